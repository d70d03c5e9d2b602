"""`sincos`: what Clay v0.1/v0.2 shipped, ``[sin φ, cos φ, sin λ, cos λ]`` with φ, λ in radians."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from clay_exp.encodings.base import Knob, SpatialEncoding


class SinCosEncoding(SpatialEncoding):
    """Four fixed features; the model's linear map to its width is the only learned part.

    They are Clay v1's location values, so ``injection=clay_v1`` packs them unprojected.
    """

    clay_v1_latlon = True
    search_space: ClassVar[
        Mapping[str, Knob]
    ] = {}  # no parameters: the projection learns with the backbone, whose rate is tuned

    def __init__(self) -> None:
        super().__init__()
        self.out_dim = 4

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        phi = torch.deg2rad(lat.float())
        lam = torch.deg2rad(lon.float())
        return torch.stack([torch.sin(phi), torch.cos(phi), torch.sin(lam), torch.cos(lam)], dim=-1)
