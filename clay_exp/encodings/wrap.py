"""`wrap`: ``[sin λ, cos λ, sin φ, cos φ]`` (radians) through an MLP, the "wrap" of species-distribution work.

Mac Aodha et al. (2019) feed ``sin(π x)``, ``cos(π x)`` of coordinates scaled to [−1, 1], i.e. φ/90
for latitude: then ``sin(π φ/90)`` and ``cos(π φ/90)`` are the same at both poles (and at any φ and
its mirror across ±45°). Here φ is in radians, so ``sin φ`` tells the poles apart; λ is periodic,
so λ = ±180° give the same features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.layers import mlp


class WrapEncoding(SpatialEncoding):
    """Four wrapped coordinates, then `num_layers` of MLP of width `hidden_dim`."""

    def __init__(self, hidden_dim: int = 64, num_layers: int = 2, lr_scale: float = 1.0) -> None:
        super().__init__(lr_scale)
        self.net = mlp(4, hidden_dim, num_layers)
        self.out_dim = hidden_dim

    @staticmethod
    def features(lat: Tensor, lon: Tensor) -> Tensor:
        """``[sin λ, cos λ, sin φ, cos φ]``, float32, λ and φ in radians."""
        lam, phi = torch.deg2rad(lon.double()), torch.deg2rad(lat.double())
        return torch.stack([lam.sin(), lam.cos(), phi.sin(), phi.cos()], dim=-1).float()

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.net(self.features(lat, lon))
