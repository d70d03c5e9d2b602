"""Small building blocks shared by several encodings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp(
    in_dim: int, hidden_dim: int, num_layers: int = 2, activation: type[nn.Module] = nn.GELU
) -> nn.Sequential:
    """`num_layers` linear layers of width `hidden_dim`, each followed by `activation`.

    The activation after the last layer is deliberate: the model's own linear projection to its
    width follows every encoding, so a trailing linear layer here would be redundant.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers={num_layers!r} must be >= 1")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(dim, hidden_dim), activation()]
        dim = hidden_dim
    return nn.Sequential(*layers)


def feature_head(in_dim: int, hidden_dim: int, num_layers: int) -> tuple[nn.Module, int]:
    """`mlp` on fixed features, or (``num_layers == 0``) none: ``(module, out_dim)``.

    With no layers the features go straight to the model's own linear map to its width, which is
    then the encoding's (linear) head.
    """
    if num_layers < 0:
        raise ValueError(f"num_layers={num_layers!r} must be >= 0 (0: no MLP, the features themselves)")
    if num_layers == 0:
        return nn.Identity(), in_dim
    return mlp(in_dim, hidden_dim, num_layers), hidden_dim


class Sine(nn.Module):
    """``sin(w0 · x)``, the SIREN activation."""

    def __init__(self, w0: float) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


def siren(
    in_dim: int, hidden_dim: int, num_layers: int = 2, w0_initial: float = 30.0, w0: float = 1.0
) -> nn.Sequential:
    """SIREN (Sitzmann et al., 2020): `num_layers` linear layers, each followed by ``sin(w0 · x)``.

    The first layer uses ``w0_initial`` (30 in the paper and in the SH+SIREN location encoder of
    Rußwurm et al., 2024) and weights ~ U(−1/in, 1/in); the others ``w0`` and U(−√(6/in)/w0, √(6/in)/w0),
    which keeps the pre-activations of every layer distributed alike. Like `mlp`, no final linear layer:
    the model's own projection follows.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers={num_layers!r} must be >= 1")
    layers: list[nn.Module] = []
    dim = in_dim
    for i in range(num_layers):
        linear = nn.Linear(dim, hidden_dim)
        bound = 1.0 / dim if i == 0 else math.sqrt(6.0 / dim) / w0
        nn.init.uniform_(linear.weight, -bound, bound)
        nn.init.uniform_(linear.bias, -bound, bound)
        layers += [linear, Sine(w0_initial if i == 0 else w0)]
        dim = hidden_dim
    return nn.Sequential(*layers)
