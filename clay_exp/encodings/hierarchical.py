"""`hierarchical`: learned vectors of the chip's chain of ancestor web-mercator tiles.

The proposal from the Clay team's discussion of spatial embeddings: a chip at zoom 15 is described
by the concatenation of a learned vector for its own tile and for its ancestors at coarser zooms
(e.g. z10, z5, z0). An ancestor's vector is shared by all 4^(dz) descendants, so semantics that are
truly continental or global can be learned once, where they are shared.

One table per level. A level whose tile count 4^z fits in ``max_rows`` is a dense table (row =
y·2^z + x); a deeper level is a hashed table of ``max_rows`` rows (row = hash(x, y, z) mod max_rows,
as in multiresolution hash encodings), so parameter memory stays bounded at any zoom.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import MercatorLatitudeClamp, SpatialEncoding
from clay_exp.hashing import hash_ints
from clay_exp.tiles import check_zoom, tile_chain

COMBINE_CHOICES = ("concat", "sum")


class TileTable(nn.Module):
    """Embedding rows for the tiles of one zoom level: dense when 4^zoom <= max_rows, hashed otherwise."""

    def __init__(self, zoom: int, dim: int, max_rows: int, init_std: float) -> None:
        super().__init__()
        self.zoom = zoom
        self.num_tiles = 4**zoom
        self.hashed = self.num_tiles > max_rows
        self.num_rows = max_rows if self.hashed else self.num_tiles
        self.embedding = nn.Embedding(self.num_rows, dim)
        nn.init.trunc_normal_(self.embedding.weight, std=init_std, a=-2 * init_std, b=2 * init_std)

    def rows(self, x: Tensor, y: Tensor) -> Tensor:
        """Row index of each tile (x, y) at this level."""
        if self.hashed:
            return hash_ints(x, y, self.zoom) % self.num_rows
        return y * (2**self.zoom) + x

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.embedding(self.rows(x, y))

    def extra_repr(self) -> str:
        kind = "hashed" if self.hashed else "dense"
        return f"zoom={self.zoom}, {kind}, rows={self.num_rows}, tiles={self.num_tiles}"


class HierarchicalTileEncoding(SpatialEncoding):
    """Concatenation (or sum) of per-level tile vectors for the chip's ancestor chain.

    Args:
        levels: increasing zoom levels whose tiles contribute a vector (default 0, 5, 10, 15).
        max_zoom: the chip's own zoom; every level must be <= max_zoom (default: the last level).
        dim_per_level: vector size per level, an int for all levels or one int per level.
        combine: ``concat`` (the proposal) or ``sum`` (all levels need the same dim).
        max_rows: largest dense table; deeper levels are hashed into this many rows.
        init_std: standard deviation of the (truncated normal) initial rows.
    """

    def __init__(
        self,
        levels: Sequence[int] = (0, 5, 10, 15),
        max_zoom: int | None = None,
        dim_per_level: int | Sequence[int] = 16,
        combine: str = "concat",
        max_rows: int = 2**16,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        levels = [check_zoom(z) for z in levels]
        if not levels:
            raise ValueError("levels must name at least one zoom level, got []")
        if any(b <= a for a, b in itertools.pairwise(levels)):
            raise ValueError(f"levels={levels} must be strictly increasing zoom levels")
        max_zoom = levels[-1] if max_zoom is None else check_zoom(max_zoom)
        if levels[-1] > max_zoom:
            raise ValueError(f"levels={levels} has a level above max_zoom={max_zoom}")
        if combine not in COMBINE_CHOICES:
            raise ValueError(f"combine={combine!r} is not one of {list(COMBINE_CHOICES)}")
        if int(max_rows) < 1:
            raise ValueError(f"max_rows={max_rows!r} must be >= 1")
        dims = (
            [int(dim_per_level)] * len(levels)
            if isinstance(dim_per_level, int)
            else [int(d) for d in dim_per_level]
        )
        if len(dims) != len(levels) or min(dims) < 1:
            raise ValueError(
                f"dim_per_level={dim_per_level!r} must be a positive int or one per level ({levels})"
            )
        if combine == "sum" and len(set(dims)) != 1:
            raise ValueError(f"combine='sum' needs the same dim for every level, got dim_per_level={dims}")

        self.levels = levels
        self.max_zoom = max_zoom
        self.dims = dims
        self.combine = combine
        self.max_rows = int(max_rows)
        self.tables = nn.ModuleList(
            TileTable(z, d, self.max_rows, init_std) for z, d in zip(levels, dims, strict=True)
        )
        self.out_dim = sum(dims) if combine == "concat" else dims[0]
        self._clamp = MercatorLatitudeClamp(type(self).__name__)

    def tile_indices(self, lat: Tensor, lon: Tensor) -> dict[int, tuple[Tensor, Tensor]]:
        """(x, y) per level of each chip's ancestor chain, from its tile at max_zoom."""
        chain = tile_chain(lon, self._clamp(lat), [*self.levels, self.max_zoom])
        return {z: chain[z] for z in self.levels}

    def level_vectors(self, lat: Tensor, lon: Tensor) -> list[Tensor]:
        chain = self.tile_indices(lat, lon)
        return [table(*chain[table.zoom]) for table in self.tables]

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        vectors = self.level_vectors(lat, lon)
        if self.combine == "concat":
            return torch.cat(vectors, dim=-1)
        return torch.stack(vectors, dim=0).sum(dim=0)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, max_zoom={self.max_zoom}, combine={self.combine}, out_dim={self.out_dim}"
        )

    @staticmethod
    def expected_collision_rate(num_tiles: int, num_rows: int) -> float:
        """Share of `num_tiles` distinct tiles that share their row with another, under a uniform hash."""
        if num_tiles <= 1:
            return 0.0
        return 1.0 - math.pow(1.0 - 1.0 / num_rows, num_tiles - 1)
