"""`xyz`: the chip's web-mercator tile (z, x, y) at one zoom, as normalised numbers through an MLP."""

from __future__ import annotations

import torch
from torch import Tensor

from clay_exp.encodings.base import MercatorLatitudeClamp, SpatialEncoding
from clay_exp.encodings.layers import mlp
from clay_exp.tiles import MAX_ZOOM, check_zoom, lonlat_to_tile


class XYZTileEncoding(SpatialEncoding):
    """Features ``[2x/2^z - 1, 2y/2^z - 1, z/30]`` of the tile centre, then ``num_layers`` of MLP.

    Tiles follow mercantile (see `clay_exp.tiles`); latitudes beyond ±85.0511° are clamped (logged once).
    """

    def __init__(
        self, zoom: int = 10, hidden_dim: int = 64, num_layers: int = 2, lr_scale: float = 1.0
    ) -> None:
        super().__init__(lr_scale)
        self.zoom = check_zoom(zoom)
        self.out_dim = hidden_dim
        self.net = mlp(3, hidden_dim, num_layers)
        self._clamp = MercatorLatitudeClamp(type(self).__name__)

    def tile_features(self, lat: Tensor, lon: Tensor) -> Tensor:
        x, y = lonlat_to_tile(lon, self._clamp(lat), self.zoom)
        n = float(2**self.zoom)
        fx = (x.to(torch.float32) + 0.5) / n * 2.0 - 1.0
        fy = (y.to(torch.float32) + 0.5) / n * 2.0 - 1.0
        fz = torch.full_like(fx, self.zoom / MAX_ZOOM)
        return torch.stack([fx, fy, fz], dim=-1)

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.net(self.tile_features(lat, lon))
