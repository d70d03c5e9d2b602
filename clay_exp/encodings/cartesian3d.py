"""`cartesian3d`: the chip's point on the unit sphere, ``(x, y, z)``, through an MLP.

Continuous everywhere on the sphere: periodic in λ, and every longitude at a pole is the same point.
"""

from __future__ import annotations

from torch import Tensor

from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.layers import mlp
from clay_exp.geometry import lonlat_to_unit


class Cartesian3DEncoding(SpatialEncoding):
    """``(cos φ cos λ, cos φ sin λ, sin φ)``, then `num_layers` of MLP of width `hidden_dim`."""

    def __init__(self, hidden_dim: int = 64, num_layers: int = 2, lr_scale: float = 1.0) -> None:
        super().__init__(lr_scale)
        self.net = mlp(3, hidden_dim, num_layers)
        self.out_dim = hidden_dim

    @staticmethod
    def features(lat: Tensor, lon: Tensor) -> Tensor:
        return lonlat_to_unit(lat.double(), lon.double()).float()

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.net(self.features(lat, lon))
