"""Train/validation splits that separate memorising places from generalising to new ones.

``split=random`` (default): training and validation chips are drawn from the same places (every
region is seen in training); validation reports ``val/loss``.

``split=region``: whole web-mercator tiles at ``zoom`` (default z3, 64 tiles of continental size) are
held out of training. A tile is held out when ``hash(seed, zoom, x, y)`` falls below ``fraction``,
so the choice is fixed, needs no table and works at any zoom. Training and the ``val`` set only see
chips whose centre lies outside the held-out tiles; the ``val_heldout`` set only chips inside them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from clay_exp.hashing import hash_uniform
from clay_exp.tiles import check_zoom, lonlat_to_tile

SPLIT_CHOICES = ("random", "region")
#: Name of the validation set of unseen regions (logged as ``val_heldout/loss``).
HELDOUT_SET = "val_heldout"
#: A predicate on chip centres (degrees): which locations a set may contain.
LocationFilter = Callable[[Tensor, Tensor], Tensor]


class RegionSplit:
    """Hold whole tiles at `zoom` out of training; `is_heldout` says which chip centres fall in them."""

    def __init__(self, zoom: int = 3, fraction: float = 0.25, seed: int = 0) -> None:
        self.zoom = check_zoom(zoom)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"data.heldout_fraction={fraction!r} must be in (0, 1)")
        self.fraction, self.seed = float(fraction), int(seed)

    def tile_is_heldout(self, x: Tensor, y: Tensor) -> Tensor:
        """Whether the tiles (x, y) at this split's zoom are held out (bool tensor)."""
        return hash_uniform(self.seed, self.zoom, x, y, dtype=torch.float64) < self.fraction

    def is_heldout(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Whether each chip centre (degrees) lies in a held-out tile."""
        x, y = lonlat_to_tile(lon, lat, self.zoom)
        return self.tile_is_heldout(x, y)

    def is_seen(self, lat: Tensor, lon: Tensor) -> Tensor:
        return ~self.is_heldout(lat, lon)

    def __repr__(self) -> str:
        return f"RegionSplit(zoom={self.zoom}, fraction={self.fraction}, seed={self.seed})"


def make_region_split(split: str, zoom: int, fraction: float, seed: int) -> RegionSplit | None:
    """The region split of a datamodule's settings (None for ``split=random``); validates `split`."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"data.split={split!r} is not one of {list(SPLIT_CHOICES)}")
    return RegionSplit(zoom, fraction, seed) if split == "region" else None


def val_set_names(region: RegionSplit | None) -> list[str]:
    """Names of the validation sets, in dataloader order; each is logged as ``<name>/loss``."""
    return ["val"] if region is None else ["val", HELDOUT_SET]


def set_filter(region: RegionSplit | None, set_name: str) -> LocationFilter | None:
    """The location filter of a set (``train``, ``val`` or ``val_heldout``) under `region`."""
    if region is None:
        return None
    return region.is_heldout if set_name == HELDOUT_SET else region.is_seen
