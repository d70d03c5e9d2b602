"""`sphere2vec`: the Sphere2Vec encoders of Mai et al. (2023), variants sphereC, sphereC+, sphereM, sphereM+.

With λ, φ in **radians**, radii ``r_s`` (radians) geometric from ``r_min`` to ``r_max`` and
``λ_s = λ / r_s``, ``φ_s = φ / r_s``, each scale s contributes (the published formulas, checked
against the authors' reference code):

* ``sphereC``  (3S): ``sin φ_s, cos φ_s cos λ_s, cos φ_s sin λ_s``
* ``sphereC+`` (6S): ``sin φ_s, cos φ_s, sin λ_s, cos λ_s, cos φ_s cos λ_s, cos φ_s sin λ_s``
* ``sphereM``  (5S): ``sin φ_s, cos φ_s cos λ, cos φ cos λ_s, cos φ_s sin λ, cos φ sin λ_s``
* ``sphereM+`` (8S): ``sin φ_s, cos φ_s, sin λ_s, cos λ_s, cos φ_s cos λ, cos φ cos λ_s, cos φ_s sin λ,
  cos φ sin λ_s``

laid out scale by scale, then an MLP (the papers' one hidden layer). At ``r_s = 1`` sphereC is the
point's 3-D unit vector. The published encoders are periodic in λ only at scales where ``1/r_s`` is
an integer (with the defaults, the coarsest, r = 1): ``periodic: true`` rounds every ``1/r_s``
applied to λ to a whole number of cycles per turn, so λ = ±180° give the same features (latitude
scales stay exact). The default is the published form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.encodings.layers import feature_head
from clay_exp.encodings.multiscale import geometric_radii, whole_cycles

FEATURES_PER_SCALE = {"sphereC": 3, "sphereC+": 6, "sphereM": 5, "sphereM+": 8}


class Sphere2VecEncoding(SpatialEncoding):
    #: The finest radius (radians) is Sphere2Vec's scale knob (TorchSpatial grids it per dataset).
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(0.1, 10.0), "r_min": Knob(1.0e-4, 0.1)}

    def __init__(
        self,
        variant: str = "sphereC+",
        num_scales: int = 64,
        r_min: float = 0.001,
        r_max: float = 1.0,
        periodic: bool = False,
        hidden_dim: int = 128,
        num_layers: int = 1,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__(lr_scale)
        if variant not in FEATURES_PER_SCALE:
            raise ValueError(f"variant={variant!r} is not one of {list(FEATURES_PER_SCALE)}")
        frequencies = 1.0 / geometric_radii(num_scales, r_min, r_max)
        lon_frequencies = whole_cycles(frequencies, 2 * torch.pi) if periodic else frequencies
        self.register_buffer("lat_frequencies", frequencies, persistent=False)
        self.register_buffer("lon_frequencies", lon_frequencies, persistent=False)
        self.variant, self.periodic = variant, bool(periodic)
        self.num_scales, self.r_min, self.r_max = int(num_scales), float(r_min), float(r_max)
        self.num_features = FEATURES_PER_SCALE[variant] * self.num_scales
        self.head, self.out_dim = feature_head(self.num_features, hidden_dim, num_layers)

    def features(self, lat: Tensor, lon: Tensor) -> Tensor:
        """The ``k·S`` features of the variant, float32 (computed in float64)."""
        phi, lam = torch.deg2rad(lat.double())[:, None], torch.deg2rad(lon.double())[:, None]  # (B, 1)
        phi_s, lam_s = phi * self.lat_frequencies, lam * self.lon_frequencies  # (B, S)
        sin_phi_s, cos_phi_s, sin_lam_s, cos_lam_s = phi_s.sin(), phi_s.cos(), lam_s.sin(), lam_s.cos()
        if self.variant == "sphereC":
            terms = [sin_phi_s, cos_phi_s * cos_lam_s, cos_phi_s * sin_lam_s]
        elif self.variant == "sphereC+":
            terms = [sin_phi_s, cos_phi_s, sin_lam_s, cos_lam_s, cos_phi_s * cos_lam_s, cos_phi_s * sin_lam_s]
        else:
            cos_phi, sin_lam, cos_lam = phi.cos(), lam.sin(), lam.cos()
            mixed = [cos_phi_s * cos_lam, cos_phi * cos_lam_s, cos_phi_s * sin_lam, cos_phi * sin_lam_s]
            terms = (
                [sin_phi_s, *mixed]
                if self.variant == "sphereM"
                else [sin_phi_s, cos_phi_s, sin_lam_s, cos_lam_s, *mixed]
            )
        return torch.stack(terms, dim=-1).flatten(1).float()  # (B, S, k) -> scale by scale

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.head(self.features(lat, lon))

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, num_scales={self.num_scales}, periodic={self.periodic}, "
            f"out_dim={self.out_dim}"
        )
