"""Scales shared by the multi-scale sinusoidal encodings (Space2Vec, Sphere2Vec).

Scale ``s`` of ``S`` has radius ``r_s = r_min · (r_max / r_min)^(s / (S − 1))``; its sinusoids are
``sin(x / r_s)``, ``cos(x / r_s)`` (wavelength ``2π r_s``), in whatever unit ``x`` and the radii share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.encodings.layers import feature_head


def geometric_radii(num_scales: int, r_min: float, r_max: float) -> Tensor:
    """The ``S`` radii ``r_min · (r_max/r_min)^(s/(S−1))``, float64, smallest first (S = 1: ``[r_max]``)."""
    if int(num_scales) != num_scales or num_scales < 1:
        raise ValueError(f"num_scales={num_scales!r} must be an integer >= 1")
    if not (math.isfinite(r_min) and math.isfinite(r_max) and 0 < r_min <= r_max):
        raise ValueError(f"need 0 < r_min <= r_max (finite), got r_min={r_min!r}, r_max={r_max!r}")
    if num_scales == 1:
        return torch.tensor([float(r_max)], dtype=torch.float64)
    s = torch.arange(num_scales, dtype=torch.float64)
    return r_min * (r_max / r_min) ** (s / (num_scales - 1))


def whole_cycles(angular_frequency: Tensor, period: float) -> Tensor:
    """Round angular frequencies so each sinusoid completes a whole number (>= 1) of cycles per `period`.

    ``sin(ω λ)`` is the same at ``λ = ±period/2`` only if ``ω · period / 2π`` is an integer; this keeps
    the sign, rounds the cycle count to the nearest integer and lifts 0 to 1 (a term never vanishes).
    """
    cycles = angular_frequency * period / (2 * math.pi)
    whole = cycles.abs().round().clamp(min=1.0) * torch.sign(cycles)
    return whole * 2 * math.pi / period


class PlaneWaveEncoding(SpatialEncoding):
    """Space2Vec's encoders: ``[sin(a_j·v / r_s), cos(a_j·v / r_s)]`` for unit vectors a_j, at S scales.

    ``v = (λ, φ)`` in degrees; radii ``r_s`` in degrees, geometric from ``r_min`` to ``r_max`` (defaults:
    S = 64, 0.1° to 360°, as TorchSpatial runs Space2Vec on longitude/latitude); the
    features are laid out scale by scale, then direction, then sin/cos (2·D·S of them), then an
    optional MLP. `space2vec_grid` uses the axes as directions, `space2vec_theory` three unit vectors
    120° apart. With ``periodic`` every longitude coefficient ``a_j,λ / r_s`` is rounded to a whole
    number of cycles per 360° (`whole_cycles`), so λ = −180° and λ = 180° give the same features;
    latitude coefficients stay exact.
    """

    directions: ClassVar[tuple[tuple[float, float], ...]]  # unit vectors (λ, φ components), per subclass
    #: The finest radius (degrees) is Space2Vec's scale knob (its authors tune it per dataset).
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(0.1, 10.0), "r_min": Knob(0.01, 10.0)}

    def __init__(
        self,
        num_scales: int = 64,
        r_min: float = 0.1,
        r_max: float = 360.0,
        periodic: bool = True,
        hidden_dim: int = 128,
        num_layers: int = 1,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__(lr_scale)
        units = torch.tensor(self.directions, dtype=torch.float64)  # (D, 2): (λ, φ) components
        frequencies = 1.0 / geometric_radii(num_scales, r_min, r_max)  # (S,)
        coef_lon = (frequencies[:, None] * units[:, 0]).flatten()  # scale-major, then direction
        coef_lat = (frequencies[:, None] * units[:, 1]).flatten()
        if periodic:
            coef_lon = whole_cycles(coef_lon, 360.0)
        self.register_buffer("coef_lon", coef_lon, persistent=False)
        self.register_buffer("coef_lat", coef_lat, persistent=False)
        self.num_scales, self.r_min, self.r_max = int(num_scales), float(r_min), float(r_max)
        self.periodic = bool(periodic)
        self.num_features = 2 * coef_lon.numel()
        self.head, self.out_dim = feature_head(self.num_features, hidden_dim, num_layers)

    def features(self, lat: Tensor, lon: Tensor) -> Tensor:
        """The sinusoids ``[sin a_0, cos a_0, sin a_1, ...]``, float32 (angles in float64)."""
        angles = lon.double()[:, None] * self.coef_lon + lat.double()[:, None] * self.coef_lat
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.head(self.features(lat, lon))

    def extra_repr(self) -> str:
        return f"num_scales={self.num_scales}, periodic={self.periodic}, out_dim={self.out_dim}"
