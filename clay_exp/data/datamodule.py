"""LightningDataModule for generated worlds: train/val splits, batched generation, worker settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from clay_exp.data.base import SplitDataModule


def passthrough_collate(batch: dict[str, Any]) -> dict[str, Any]:
    """The world's `__getitems__` already returns a stacked batch dict: nothing to collate."""
    return batch


class EpochShuffleSampler(Sampler[int]):
    """A random order fixed by (seed, epoch) alone; Lightning calls `set_epoch` before each epoch.

    Unlike a RandomSampler fed from the global RNG, the order does not depend on how many random
    numbers model construction drew (so every encoding sees the same batches for a given seed) nor
    on whether the run was resumed from a checkpoint (the epochs after it are the same as without).
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = int(length), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())

    def __len__(self) -> int:
        return self.length


class WorldDataModule(SplitDataModule):
    """Wraps a world: a map-style dataset whose ``__getitems__(indices)`` returns a whole batch dict.

    Args:
        world: a callable (Hydra ``_partial_``) building the dataset:
            ``world(split=, length=, bands=, chip_size=)``.
        bands, chip_size: the chip shape, shared with the model config through interpolation.
        batch_size: chips per batch.
        train_size, val_size: chips per epoch in each split (fixed sets: the same chips every epoch).
        num_workers: DataLoader workers (0 = generate in the training process, best on 2 cores).
        pin_memory: pin batches for faster host-to-GPU copies (applied only when CUDA is available;
            Lightning then copies batches to the GPU with ``non_blocking=True``).
        shuffle_seed: the training order is a function of (shuffle_seed, epoch); the run seed by default.
        split: ``random`` or ``region`` (tiles at ``heldout_zoom`` held out of training, hashed with
            ``heldout_seed``, a ``heldout_fraction`` of them; see clay_exp.data.splits). With
            ``region`` the validation sets are ``val`` (seen regions) and ``val_heldout`` (unseen).
        eval_sets: ``val`` (the reported sets) or ``tune`` (a tuning trial: ``tune``, new chips of
            their own in the seen regions, and ``tune_heldout``; see clay_exp.data.splits).
        tune_heldout_fraction: share of the held-out tiles set apart for ``tune_heldout``, which
            ``val_heldout`` then never uses (0: none, every held-out tile validates, as before).
    """

    serves_tune_sets = True

    def __init__(
        self,
        world: Callable[..., Dataset],
        bands: int = 4,
        chip_size: int = 32,
        batch_size: int = 64,
        train_size: int = 4096,
        val_size: int = 1024,
        num_workers: int = 0,
        pin_memory: bool = True,
        shuffle_seed: int = 0,
        split: str = "random",
        heldout_zoom: int = 3,
        heldout_fraction: float = 0.25,
        heldout_seed: int = 0,
        eval_sets: str = "val",
        tune_heldout_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        self.init_split(
            batch_size=batch_size,
            train_size=train_size,
            val_size=val_size,
            num_workers=num_workers,
            split=split,
            heldout_zoom=heldout_zoom,
            heldout_fraction=heldout_fraction,
            heldout_seed=heldout_seed,
            eval_sets=eval_sets,
            tune_heldout_fraction=tune_heldout_fraction,
        )
        self.world = world
        self.bands, self.chip_size = bands, chip_size
        self.batch_size, self.train_size = batch_size, train_size
        self.num_workers, self.pin_memory, self.shuffle_seed = num_workers, pin_memory, shuffle_seed
        self.datasets: dict[str, Dataset] = {}

    def make_dataset(self, name: str) -> Dataset:
        """The dataset of a set: ``train`` or one of `val_set_names`."""
        length = self.train_size if name == "train" else self.val_size
        kwargs = {"region": self.set_filter(name)} if self.region is not None else {}
        split = "train" if name == "train" else "tune" if name.startswith("tune") else "val"
        return self.world(split=split, length=length, bands=self.bands, chip_size=self.chip_size, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        for name in ("train", *self.val_set_names):
            if name not in self.datasets:
                self.datasets[name] = self.make_dataset(name)
        # A world that can tell which of a chip's tiles hold training chips (hierarchical_world's
        # `latents_seen`, read by the learnable yardstick `oracle_seen`) learns the training locations.
        train = self.datasets["train"]
        if hasattr(train, "observe_training"):
            lat, lon = train.locations(torch.arange(len(train)) + train.offset)
            for dataset in self.datasets.values():
                dataset.observe_training(lat, lon)

    def set_dataloader(self, name: str) -> DataLoader:
        dataset = self.datasets[name]
        shuffle = name == "train"
        # Auto-batching over a sampler, so Lightning can wrap it in a DistributedSampler under DDP;
        # the world's `__getitems__` receives a batch's indices and generates it in one call.
        sampler = (
            EpochShuffleSampler(len(dataset), self.shuffle_seed) if shuffle else SequentialSampler(dataset)
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=shuffle and len(dataset) >= self.batch_size,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
