"""The split plumbing every clay-exp datamodule shares: size checks, random/region split, val sets.

`SplitDataModule` holds it once; a datamodule subclasses it (first, before any library base such
as TorchGeo's `GeoDataModule`), calls `init_split` in its ``__init__`` before building anything, and
implements `set_dataloader(name)` for ``train`` and each of `val_set_names`. The validation
dataloaders, the set names the module logs (``val``, ``val_heldout``) and each set's location
filter then come from here. ``eval_sets=tune`` (a tuning trial, configs/stage/tune.yaml) serves
the tuning sets ``tune`` (+ ``tune_heldout``) in their place; a datamodule that cannot hold such
chips apart from its validation chips leaves `serves_tune_sets` False and refuses it.
"""

from __future__ import annotations

from typing import ClassVar

import lightning as L
from torch.utils.data import DataLoader

from clay_exp.data.splits import LocationFilter, RegionSplit, make_region_split, set_filter, val_set_names


def check_sizes(**sizes: int) -> None:
    """ValueError naming the first of `sizes` (``data.<name>``) that is below 1."""
    for name, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"data.{name}={value!r} must be >= 1")


class SplitDataModule(L.LightningDataModule):
    """A datamodule with a ``random`` or ``region`` split (clay_exp.data.splits) and named val sets.

    With ``split=random`` there is one validation set, ``val``; with ``split=region`` two: ``val``
    (seen regions) and ``val_heldout`` (tiles held out of training), in that dataloader order.
    """

    region: RegionSplit | None = None
    val_size: int
    eval_sets: str = "val"
    #: Whether this datamodule can serve tuning chips apart from every validation chip.
    serves_tune_sets: ClassVar[bool] = False

    def init_split(
        self,
        *,
        batch_size: int,
        train_size: int,
        val_size: int,
        num_workers: int,
        split: str,
        heldout_zoom: int,
        heldout_fraction: float,
        heldout_seed: int,
        eval_sets: str = "val",
        tune_heldout_fraction: float = 0.0,
    ) -> None:
        """Check the sizes and the split settings (ValueError naming the bad one); keep the split."""
        check_sizes(batch_size=batch_size, train_size=train_size, val_size=val_size)
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers!r} must be >= 0")
        self.val_size = int(val_size)
        self.region = make_region_split(
            split, heldout_zoom, heldout_fraction, heldout_seed, tune_heldout_fraction
        )
        val_set_names(self.region, eval_sets)  # validates eval_sets
        if eval_sets == "tune" and not self.serves_tune_sets:
            raise ValueError(
                f"data.eval_sets='tune' (a tuning trial, stage=tune): {type(self).__name__} has no tuning "
                "chips held apart from its validation chips yet; tune on a generated world "
                "(data=hierarchical_world, earth, synthetic)"
            )
        self.eval_sets = eval_sets

    @property
    def val_set_names(self) -> list[str]:
        """Validation sets in dataloader order; the module logs ``<name>/loss`` for each."""
        return val_set_names(self.region, self.eval_sets)

    def set_filter(self, name: str) -> LocationFilter | None:
        """Which chip centres set `name` (``train`` or a val set) may contain; None: all."""
        return set_filter(self.region, name)

    def set_dataloader(self, name: str) -> DataLoader:
        """The dataloader of set `name`: ``train`` or one of `val_set_names`."""
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self.set_dataloader("train")

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self.set_dataloader(name) for name in self.val_set_names]
        return loaders[0] if len(loaders) == 1 else loaders
