"""`tile_lookup`: one learned vector per longitude/latitude cell of ``cell_size_deg`` degrees.

The simple learned baseline ("tile" in species-distribution work). Cells are ``cell_size_deg`` wide
in both directions, counted from (−180°, −90°): column ``⌊(λ + 180)/c⌋``, row ``⌊(φ + 90)/c⌋``; the
last column and row are narrower when ``c`` does not divide 360 or 180. λ = 180° is the same
meridian as −180° and goes to column 0 (periodic); φ = 90° goes to the last row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import Knob, SpatialEncoding, check_coordinates


class TileLookupEncoding(SpatialEncoding):
    #: A row learns only from the chips in its cell: like the tile tables, it may need a rate far
    #: above the backbone's.
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(1.0, 1024.0)}

    def __init__(
        self,
        cell_size_deg: float = 1.0,
        dim: int = 16,
        max_rows: int = 2**20,
        init_std: float = 0.02,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__(lr_scale)
        if not (math.isfinite(cell_size_deg) and 0 < cell_size_deg <= 180):
            raise ValueError(f"cell_size_deg={cell_size_deg!r} must be in (0, 180] degrees")
        if int(dim) < 1:
            raise ValueError(f"dim={dim!r} must be >= 1")
        self.cell_size_deg = float(cell_size_deg)
        # a hair of tolerance so that e.g. 360 / 0.1 = 3600.0000000000005 is 3600 columns, not 3601
        self.num_lon = math.ceil(360.0 / self.cell_size_deg - 1e-9)
        self.num_lat = math.ceil(180.0 / self.cell_size_deg - 1e-9)
        num_rows = self.num_lon * self.num_lat
        if num_rows > max_rows:
            raise ValueError(
                f"cell_size_deg={cell_size_deg} makes {self.num_lon}x{self.num_lat}={num_rows} cells, "
                f"more than max_rows={max_rows}; use larger cells (or raise max_rows)"
            )
        self.table = nn.Embedding(num_rows, int(dim))
        nn.init.trunc_normal_(self.table.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        self.out_dim = int(dim)

    def cell_index(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Row of each chip's cell: ``row·num_lon + column``, int64. Invalid coordinates (NaN, out of
        range) raise, as in `forward`: the clamps below would otherwise give them a cell."""
        check_coordinates(lat, lon)
        lat, lon = lat.double(), lon.double()
        lon = torch.where(lon >= 180.0, lon - 360.0, lon)  # 180° is −180°
        column = torch.floor((lon + 180.0) / self.cell_size_deg).long().clamp(0, self.num_lon - 1)
        row = torch.floor((lat + 90.0) / self.cell_size_deg).long().clamp(0, self.num_lat - 1)
        return row * self.num_lon + column

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.table(self.cell_index(lat, lon))

    def extra_repr(self) -> str:
        return (
            f"cell_size_deg={self.cell_size_deg}, cells={self.num_lon}x{self.num_lat}, out_dim={self.out_dim}"
        )
