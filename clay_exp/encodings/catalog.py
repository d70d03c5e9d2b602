"""Every encoding config, built as a training run would build it: for listings, tests and benchmarks.

An encoding's YAML may interpolate run-level values (``seed: ${seed}``), so it is composed with the
rest of ``configs/train.yaml`` rather than loaded on its own.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf

from clay_exp.config import compose_config, config_options
from clay_exp.encodings.base import SpatialEncoding

#: Encodings valid with one world only, and the overrides that select it. The oracle reads the true
#: latent factors that only `data=hierarchical_world` generates (its YAML interpolates that world's levels).
REQUIRED_OVERRIDES: dict[str, tuple[str, ...]] = {
    "oracle": ("data=hierarchical_world",),
    "oracle_seen": ("data=hierarchical_world",),
}


def required_overrides(name: str) -> tuple[str, ...]:
    """The overrides encoding `name` cannot run without (empty for most)."""
    return REQUIRED_OVERRIDES.get(name, ())


def encoding_names() -> list[str]:
    """Every option of the ``encoding`` config group."""
    return config_options("encoding")


@functools.cache
def _resolved_encoding_config(name: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    cfg = compose_config([f"encoding={name}", *required_overrides(name), *overrides])
    return OmegaConf.to_container(cfg.encoding, resolve=True)  # type: ignore[return-value]


def encoding_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved ``encoding`` node of ``python train.py encoding=<name> <overrides>``."""
    return copy.deepcopy(_resolved_encoding_config(name, tuple(overrides)))


def missing_dependency(error: BaseException) -> ImportError | None:
    """The ImportError behind a failed instantiation (an optional extra not installed), if that was it."""
    while error is not None:
        if isinstance(error, ImportError):
            return error
        error = error.__cause__  # type: ignore[assignment]
    return None


def build_encoding(name: str, overrides: Sequence[str] = ()) -> SpatialEncoding:
    """Instantiate encoding `name` (ImportError, with the install hint, when an optional extra is missing)."""
    try:
        return instantiate(encoding_config(name, overrides))
    except Exception as error:
        missing = missing_dependency(error)
        if missing is not None and missing is not error:
            raise missing from error
        raise


@dataclass
class EncodingSummary:
    name: str
    target: str
    out_dim: int | None = None
    parameters: int | None = None
    trainable: int | None = None
    note: str = ""


def summarize(name: str) -> EncodingSummary:
    """Output dim and parameter counts of one encoding, or a note saying why it cannot be built here."""
    target = str(encoding_config(name).get("_target_", ""))
    try:
        enc = build_encoding(name)
    except ImportError as error:
        return EncodingSummary(name, target, note=f"skipped: {error}")
    summary = EncodingSummary(
        name,
        target,
        out_dim=enc.out_dim,
        parameters=sum(p.numel() for p in enc.parameters()),
        trainable=sum(p.numel() for p in enc.parameters() if p.requires_grad),
    )
    extra = [k for k in enc.inputs if k not in ("lat", "lon")]
    if extra:
        summary.note = f"needs batch keys {extra} (only with a world that provides them)"
    return summary
