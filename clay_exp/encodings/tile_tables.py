"""The tables of `hierarchical` (`clay_exp.encodings.hierarchical`): one `TileTable` per zoom level,
dense while its 4^z tiles fit in ``max_rows`` rows, hashed into them beyond (a spatial hash as in
multiresolution hash encodings); how many entries of a lookup share a row, the measured collision
rate; and `level_share_factor`, the static shared-semantics factor of a level.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clay_exp.hashing import hash_ints


def level_share_factor(rule: str, zoom: int, max_zoom: int, floor: float) -> float:
    """The static factor of level `zoom` under `rule`: count 4^-(max_zoom-zoom), sqrt_count 2^-(...),
    floored at `floor`; 1 for ``none``, ``batch_count`` and ``observed`` (whose factor is per row)."""
    dz = max_zoom - zoom
    factor = {"count": 4.0**-dz, "sqrt_count": 2.0**-dz}.get(rule, 1.0)
    return max(floor, factor)


class TileTable(nn.Module):
    """Embedding rows for the tiles of one zoom level: dense when 4^zoom <= max_rows, hashed otherwise."""

    def __init__(self, zoom: int, dim: int, max_rows: int, init_std: float, track_hits: bool = False) -> None:
        super().__init__()
        self.zoom = zoom
        self.num_tiles = 4**zoom
        self.hashed = self.num_tiles > max_rows
        self.num_rows = max_rows if self.hashed else self.num_tiles
        self.embedding = nn.Embedding(self.num_rows, dim)
        if init_std > 0:
            nn.init.trunc_normal_(self.embedding.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        else:  # every row starts equal: a tile no training chip reaches stays neutral (see init_std)
            nn.init.zeros_(self.embedding.weight)
        #: Training chips that reached each row (only when a rule needs it: keeps old checkpoints loading).
        #: Integers, so that casting the model (``.half()``, bf16-true precision) cannot round them.
        self.hits: Tensor | None
        self.register_buffer("hits", torch.zeros(self.num_rows, dtype=torch.long) if track_hits else None)

    def rows(self, x: Tensor, y: Tensor) -> Tensor:
        """Row index of each tile (x, y) at this level: its dense index y·2^z + x, hashed if the table is."""
        tile = (y << self.zoom) | x
        # One key, not (x, y, z): a third of the hashing work, and each level has its own table anyway.
        return hash_ints(tile) % self.num_rows if self.hashed else tile

    def row_counts(self, rows: Tensor, dtype: torch.dtype) -> Tensor:
        """For each entry of `rows`, how many entries of `rows` name the same row (no host sync)."""
        counts = torch.zeros(self.num_rows, dtype=dtype, device=rows.device)
        return counts.index_add_(0, rows, torch.ones_like(rows, dtype=dtype))[rows]

    def collision_rate(self, x: Tensor, y: Tensor) -> float:
        """Share of the distinct tiles among (x, y) whose row is shared with another distinct tile."""
        tiles = torch.unique(torch.stack([x, y], dim=-1), dim=0)
        if len(tiles) == 0:
            return 0.0
        rows = self.rows(tiles[:, 0], tiles[:, 1])
        return float((self.row_counts(rows, torch.float64) > 1).double().mean())

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.embedding(self.rows(x, y))

    def extra_repr(self) -> str:
        kind = "hashed" if self.hashed else "dense"
        return f"zoom={self.zoom}, {kind}, rows={self.num_rows}, tiles={self.num_tiles}"
