"""Train/validation splits that separate memorising places from generalising to new ones.

``split=random`` (default): training and validation chips are drawn from the same places (every
region is seen in training); validation reports ``val/loss``.

``split=region``: whole web-mercator tiles at ``zoom`` (default z3, 64 tiles of continental size) are
held out of training. A tile is held out when ``hash(seed, zoom, x, y)`` falls below ``fraction``,
so the choice is fixed, needs no table and works at any zoom. Training and the ``val`` set only see
chips whose centre lies outside the held-out tiles; the ``val_heldout`` set only chips inside them.

Tuning sets (``eval_sets=tune``, what a tuning trial validates on instead, so that no setting is
chosen on the chips a study reports): ``tune``, new chips in the seen regions (chip ids of their own,
`clay_exp.data.worlds.world.SPLIT_OFFSETS`), and under ``split=region`` with ``tune_fraction > 0``
``tune_heldout``, chips in a share of the held-out tiles (a second hash of the tile) that
``val_heldout`` then never uses. ``tune_fraction = 0`` (the default) leaves every set as it was.
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
#: Which sets a run evaluates on: the reported ones, or the tuning ones (a tuning trial).
EVAL_SETS_CHOICES = ("val", "tune")
#: The tuning sets: seen regions, and the held-out tiles set apart for tuning.
TUNE_SET, TUNE_HELDOUT_SET = "tune", "tune_heldout"
# Hash stream that partitions the held-out tiles into tuning and validation tiles (any constant
# that differs from the hold-out hash's keys).
_TUNE_STREAM = 31
#: A predicate on chip centres (degrees): which locations a set may contain.
LocationFilter = Callable[[Tensor, Tensor], Tensor]


class RegionSplit:
    """Hold whole tiles at `zoom` out of training; `is_heldout` says which chip centres fall in them.

    `tune_fraction` of the held-out tiles (by a second, independent hash) are tuning tiles: the
    ``tune_heldout`` set lies in them, ``val_heldout`` in the others.
    """

    def __init__(
        self, zoom: int = 3, fraction: float = 0.25, seed: int = 0, tune_fraction: float = 0.0
    ) -> None:
        self.zoom = check_zoom(zoom)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"data.heldout_fraction={fraction!r} must be in (0, 1)")
        if not 0.0 <= tune_fraction < 1.0:
            raise ValueError(
                f"data.tune_heldout_fraction={tune_fraction!r} must be in [0, 1): the share of the held-out "
                "tiles set apart for tuning (0: none, val_heldout keeps them all)"
            )
        self.fraction, self.seed, self.tune_fraction = float(fraction), int(seed), float(tune_fraction)

    def tile_is_heldout(self, x: Tensor, y: Tensor) -> Tensor:
        """Whether the tiles (x, y) at this split's zoom are held out (bool tensor)."""
        return hash_uniform(self.seed, self.zoom, x, y, dtype=torch.float64) < self.fraction

    def tile_is_tune(self, x: Tensor, y: Tensor) -> Tensor:
        """Whether the tiles (x, y) are held-out tiles set apart for tuning (``tune_heldout``)."""
        tune = (
            hash_uniform(self.seed, _TUNE_STREAM, self.zoom, x, y, dtype=torch.float64) < self.tune_fraction
        )
        return self.tile_is_heldout(x, y) & tune

    def is_heldout(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Whether each chip centre (degrees) lies in a held-out tile."""
        x, y = lonlat_to_tile(lon, lat, self.zoom)
        return self.tile_is_heldout(x, y)

    def is_seen(self, lat: Tensor, lon: Tensor) -> Tensor:
        return ~self.is_heldout(lat, lon)

    def is_tune_heldout(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Whether each chip centre lies in a held-out tile set apart for tuning."""
        x, y = lonlat_to_tile(lon, lat, self.zoom)
        return self.tile_is_tune(x, y)

    def is_val_heldout(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Whether each chip centre lies in a held-out tile that validation reports (not tuning's)."""
        if self.tune_fraction == 0.0:  # exactly the held-out tiles, as before tuning sets existed
            return self.is_heldout(lat, lon)
        x, y = lonlat_to_tile(lon, lat, self.zoom)
        return self.tile_is_heldout(x, y) & ~self.tile_is_tune(x, y)

    def __repr__(self) -> str:
        tune = f", tune_fraction={self.tune_fraction}" if self.tune_fraction else ""  # old reprs unchanged
        return f"RegionSplit(zoom={self.zoom}, fraction={self.fraction}, seed={self.seed}{tune})"


def make_region_split(
    split: str, zoom: int, fraction: float, seed: int, tune_fraction: float = 0.0
) -> RegionSplit | None:
    """The region split of a datamodule's settings (None for ``split=random``); validates `split`."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"data.split={split!r} is not one of {list(SPLIT_CHOICES)}")
    if split != "region" and tune_fraction:
        raise ValueError(
            f"data.tune_heldout_fraction={tune_fraction!r} needs data.split=region (it sets apart held-out "
            f"tiles for tuning; data.split={split!r} holds none out)"
        )
    return RegionSplit(zoom, fraction, seed, tune_fraction) if split == "region" else None


def val_set_names(region: RegionSplit | None, eval_sets: str = "val") -> list[str]:
    """Names of the validation sets, in dataloader order; each is logged as ``<name>/loss``.

    ``eval_sets=val``: ``val`` (+ ``val_heldout`` under a region split); ``tune``: ``tune`` (+
    ``tune_heldout`` where the region split sets held-out tiles apart for tuning).
    """
    if eval_sets not in EVAL_SETS_CHOICES:
        raise ValueError(f"data.eval_sets={eval_sets!r} is not one of {list(EVAL_SETS_CHOICES)}")
    if eval_sets == "tune":
        return [TUNE_SET] if region is None or not region.tune_fraction else [TUNE_SET, TUNE_HELDOUT_SET]
    return ["val"] if region is None else ["val", HELDOUT_SET]


def set_filter(region: RegionSplit | None, set_name: str) -> LocationFilter | None:
    """The location filter of a set (``train``, ``val``, ``val_heldout``, ``tune`` or
    ``tune_heldout``) under `region`."""
    if region is None:
        return None
    if set_name == HELDOUT_SET:
        return region.is_val_heldout
    if set_name == TUNE_HELDOUT_SET:
        return region.is_tune_heldout
    return region.is_seen
