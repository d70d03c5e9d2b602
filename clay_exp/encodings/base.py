"""The one interface every spatial encoding implements.

A spatial encoding turns a batch's coordinates (latitude and longitude in degrees, float tensors of
shape ``(B,)``, plus any other batch keys it declares in ``inputs``) into a ``(B, out_dim)`` float
tensor. It knows nothing of the backbone: the MAE projects ``out_dim`` to its width and injects it.

Adding an encoding = one file here (a subclass implementing ``encode``) + one YAML in
``configs/encoding/`` whose ``_target_`` points at it. What an encoding needs beyond a location is
declared on its class (`SpatialEncoding.inputs`, `requires_package`, `required_overrides`); the
catalog (`clay_exp.catalog.unavailable_reason`) derives from these alone whether a training run,
the probe or a benchmark can run it. What a study may tune is declared there too
(`SpatialEncoding.search_space`: `Knob` s named by their constructor arguments, read by
`clay_exp.tuning`). This package imports neither Hydra nor `clay_exp.data`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from clay_exp.tiles import MERCATOR_MAX_LAT

log = logging.getLogger(__name__)


def check_coordinates(lat: Tensor, lon: Tensor) -> None:
    """Raise ValueError naming the first offending chip if a coordinate is NaN/inf or out of range.

    Valid: -90 <= lat <= 90 and -180 <= lon <= 180 (degrees). One host sync per call: cheap next to
    a training step, and silent garbage (a NaN embedding, a wrapped tile) is far more expensive.
    """
    if lat.shape != lon.shape or lat.dim() != 1:
        raise ValueError(
            f"lat and lon must be 1-D tensors of equal length (one per chip), got shapes "
            f"{tuple(lat.shape)} and {tuple(lon.shape)}"
        )
    bad = ~(torch.isfinite(lat) & torch.isfinite(lon) & (lat.abs() <= 90.0) & (lon.abs() <= 180.0))
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()
        i = int(idx[0])
        raise ValueError(
            f"invalid coordinates for chip {i} of the batch: lat={float(lat[i])!r}, lon={float(lon[i])!r} "
            f"({len(idx)} invalid chip(s) in total; valid: -90<=lat<=90 and -180<=lon<=180 degrees, "
            "finite). A chip without a location: mark it in the batch's `location_known`, or let NaN "
            "mean missing with model.missing_location=allow"
        )


#: How a knob's range is searched: ``log`` (log-uniform; rates, radii, frequencies), ``linear``
#: (uniform) or ``choice`` (one of a list).
KNOB_SCALES = ("log", "linear", "choice")


@dataclass(frozen=True)
class Knob:
    """One tunable setting of an encoding (or of the backbone): its range and how to search it.

    ``Knob(low, high)`` is log-uniform, ``Knob(low, high, "linear")`` uniform, ``integer=True`` draws
    whole numbers, ``Knob.choice(a, b, ...)`` one of a list. Declared on an encoding class under its
    constructor argument's name (`SpatialEncoding.search_space`); a study may narrow, widen or fix it.
    """

    low: float | None = None
    high: float | None = None
    scale: str = "log"
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.scale not in KNOB_SCALES:
            raise ValueError(f"knob scale={self.scale!r} is not one of {list(KNOB_SCALES)}")
        if self.scale == "choice":
            if not self.choices:
                raise ValueError("a choice knob needs at least one value in `choices`")
            return
        if self.low is None or self.high is None or self.choices:
            raise ValueError(f"a {self.scale} knob needs `low` and `high` (and no `choices`), got {self}")
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"knob range [{self.low}, {self.high}] must be finite with low < high")
        if self.scale == "log" and low <= 0:
            raise ValueError(f"a log knob needs low > 0, got [{self.low}, {self.high}]")
        if self.integer and (low != int(low) or high != int(high)):
            raise ValueError(f"an integer knob needs whole-number bounds, got [{self.low}, {self.high}]")

    @classmethod
    def choice(cls, *values: Any) -> Knob:
        return cls(scale="choice", choices=tuple(values))

    def contains(self, value: Any) -> bool:
        """Whether `value` lies in the range (or is one of the choices)."""
        if self.scale == "choice":
            return value in self.choices
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if self.integer and number != int(number):
            return False
        return float(self.low) <= number <= float(self.high)  # type: ignore[arg-type]

    def position(self, value: float) -> float:
        """Where `value` sits in the range, 0 (low) to 1 (high), on the knob's own scale."""
        if self.scale == "choice":
            raise ValueError("a choice knob has no position in a range")
        low, high, value = float(self.low), float(self.high), float(value)  # type: ignore[arg-type]
        if self.scale == "log":
            low, high, value = math.log(low), math.log(high), math.log(value)
        return (value - low) / (high - low)

    def describe(self) -> str:
        """One line: ``log [0.0003, 0.01]``, ``int [5, 30]``, ``one of [8, 16, 32]``."""
        if self.scale == "choice":
            return f"one of {list(self.choices)}"
        kind = ("int-log" if self.scale == "log" else "int") if self.integer else self.scale
        return f"{kind} [{self.low:g}, {self.high:g}]"


def _check_lr_scale(lr_scale: float) -> float:
    if not (isinstance(lr_scale, int | float) and math.isfinite(lr_scale) and lr_scale > 0):
        raise ValueError(
            f"lr_scale={lr_scale!r} must be > 0: a finite factor on the backbone's learning rate "
            "(encoding.lr_scale)"
        )
    return float(lr_scale)


class SpatialEncoding(nn.Module):
    """Base class: ``forward(batch) -> (B, out_dim)``.

    Subclasses set ``out_dim`` in ``__init__`` and implement ``encode(lat, lon, **extra)``; the base
    class validates coordinates before ``encode`` sees them. What a subclass needs, declared once on
    the class (everything that decides whether it can run, in train, sweeps, probe and benchmarks,
    reads these):

    * ``inputs``: the batch keys ``encode`` receives (``lat`` and ``lon`` by default).
    * ``requires_package``: the optional package (a pip extra of the same name, ``pip install
      '.[<name>]'``) it imports, or None.
    * ``required_overrides``: the overrides a run needs for its batches to carry ``inputs``, e.g.
      ``("data=hierarchical_world",)`` for the oracle's ``latents``; empty when any world will do.
    * ``search_space``: what a study may tune, `Knob` s under constructor argument names (a study
      prefixes them ``encoding.``). The default tunes the encoding's own rate, ``lr_scale``; an
      encoding without parameters declares ``{}`` (its arms tune the backbone's rate only).

    ``lr_scale`` (a constructor argument of every encoding with parameters, default 1): its
    parameters learn at ``lr_scale`` times the backbone's rate. The model's projection of the
    encoding to its width is *not* scaled: a dense layer every chip trains at every step, it learns
    at the backbone's rate (what the rate of a sparse table row must make up for does not apply).
    """

    inputs: ClassVar[tuple[str, ...]] = ("lat", "lon")
    requires_package: ClassVar[str | None] = None
    required_overrides: ClassVar[tuple[str, ...]] = ()
    #: True when `encode` returns exactly Clay v1's location values ``[sin φ, cos φ, sin λ, cos λ]``
    #: (radians): ``injection=clay_v1`` then packs them unprojected (see clay_exp/models/injection/).
    clay_v1_latlon: ClassVar[bool] = False
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(0.1, 10.0)}

    def __init__(self, lr_scale: float = 1.0) -> None:
        super().__init__()
        self.out_dim: int = 0
        self.lr_scale = _check_lr_scale(lr_scale)

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise KeyError(
                f"{type(self).__name__} needs batch keys {list(self.inputs)}, missing {missing}; "
                f"the batch has {sorted(batch)}"
            )
        if "lat" in self.inputs and "lon" in self.inputs:
            check_coordinates(batch["lat"], batch["lon"])
        return self.encode(**{k: batch[k] for k in self.inputs})

    def encode(self, lat: Tensor, lon: Tensor, **extra: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups for this encoding's own parameters.

        Each dict has ``params`` and may carry ``name``, ``lr_scale`` (multiplies the base learning
        rate) and ``weight_decay``. The default: one group at the encoding's ``lr_scale``, no weight
        decay (decoupled weight decay would shrink every row of an embedding table at every step,
        including rows no chip used).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        group = {"name": "encoding", "params": params, "weight_decay": 0.0, "lr_scale": self.lr_scale}
        return [group] if params else []

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Called by the LightningModule once the optimizer over `param_groups` exists.

        For an encoding that must act on the update itself (what a group's ``lr_scale`` cannot
        express, e.g. a per-row factor) or watch it (diagnostics): it may register the optimizer's
        step hooks here. The default does nothing.
        """

    def diagnostics(self) -> dict[str, float]:
        """Scalars describing the encoding's learning state, logged every few steps by
        `clay_exp.callbacks.EncodingDiagnostics` under ``enc/<key>``. The default: none."""
        return {}

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}"


class MercatorLatitudeClamp:
    """Clamp latitudes to the web-mercator limit, saying so once in the log (per encoding instance)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.warned = False

    def __call__(self, lat: Tensor) -> Tensor:
        if not self.warned and bool((lat.abs() > MERCATOR_MAX_LAT).any()):
            log.warning(
                "%s: latitudes beyond the web-mercator limit ±%.4f° are clamped to it (max |lat|: %.4f); "
                "this message is shown once.",
                self.owner,
                MERCATOR_MAX_LAT,
                float(lat.abs().max()),
            )
            self.warned = True
        return lat.clamp(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT)
