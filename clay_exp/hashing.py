"""Counter-based hashing in plain int64 tensor ops: deterministic randomness and spatial hashes.

`torch.Generator` streams depend on the order of calls, so "chip i of seed s" would change with the
batch size or the number of workers. Hashing (seed, stream, index) instead gives every chip, pixel
or tile its own random number, vectorised, identical on CPU and GPU. The 32-bit mixer is
Chris Wellons' `lowbias32`; products are split into 16-bit halves so that no int64 intermediate
overflows (signed overflow is undefined behaviour in the kernels torch runs).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for 0 <= x < 2**32, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return ((x * lo) + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def mix32(x: Tensor) -> Tensor:
    """lowbias32 avalanche of the low 32 bits of an int64 tensor; result in [0, 2**32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    x = x ^ (x >> 16)
    return x


def _mix32_int(x: int) -> int:
    """`mix32` of one Python int (the same arithmetic, without a tensor op per step)."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


_SEED32 = 0x2545F491


def hash_ints(*keys: Tensor | int) -> Tensor:
    """Hash any number of non-negative int64 tensors/ints (broadcast together) to [0, 2**32).

    Keys up to 2**62 are supported: each is folded in as two 32-bit halves. Leading plain ints
    (seed, stream, ...) are folded in Python: ~20 tensor ops each saved on every call.
    """
    tensors = [k for k in keys if isinstance(k, Tensor)]
    device = tensors[0].device if tensors else None
    h, rest = _SEED32, list(keys)
    while rest and not isinstance(rest[0], Tensor):
        k = int(rest.pop(0))
        h = _mix32_int(_mix32_int(h ^ (k & _MASK32)) ^ (k >> 32))
    out = torch.full((), h, dtype=torch.int64, device=device)
    for k in rest:
        k = torch.as_tensor(k, dtype=torch.int64, device=device)
        out = mix32(out ^ (k & _MASK32))
        out = mix32(out ^ (k >> 32))
    return out


def hash_uniform(*keys: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform numbers in the open interval (0, 1), one per broadcast element of the keys."""
    return ((hash_ints(*keys).to(torch.float64) + 0.5) / 2.0**32).to(dtype)
