"""LightningDataModule for generated worlds: train/val splits, batched generation, worker settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class WorldDataModule(L.LightningDataModule):
    """Wraps a world (a map-style dataset that accepts a list of indices and returns a batch dict).

    Args:
        world: a callable (Hydra ``_partial_``) building the dataset:
            ``world(split=, length=, bands=, chip_size=)``.
        bands, chip_size: the chip shape, shared with the model config through interpolation.
        batch_size: chips per batch.
        train_size, val_size: chips per epoch in each split (fixed sets: the same chips every epoch).
        num_workers: DataLoader workers (0 = generate in the training process, best on 2 cores).
        pin_memory: pin batches for faster host-to-GPU copies (only useful with a GPU).
    """

    def __init__(
        self,
        world: Callable[..., Dataset],
        bands: int = 4,
        chip_size: int = 32,
        batch_size: int = 64,
        train_size: int = 4096,
        val_size: int = 1024,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("train_size", train_size), ("val_size", val_size)):
            if int(value) < 1:
                raise ValueError(f"data.{name}={value!r} must be >= 1")
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers!r} must be >= 0")
        self.world = world
        self.bands, self.chip_size = bands, chip_size
        self.batch_size, self.train_size, self.val_size = batch_size, train_size, val_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.datasets: dict[str, Dataset] = {}

    def make_dataset(self, split: str) -> Dataset:
        length = self.train_size if split == "train" else self.val_size
        return self.world(split=split, length=length, bands=self.bands, chip_size=self.chip_size)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        base = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        # batch_size=None + a BatchSampler: the dataset gets a list of indices and builds the whole
        # batch in one vectorised call instead of B calls and a collate.
        sampler = BatchSampler(
            base, batch_size=self.batch_size, drop_last=shuffle and len(dataset) >= self.batch_size
        )
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def describe(self) -> dict[str, Any]:
        """Facts about the data for results.json."""
        return {
            "bands": self.bands,
            "chip_size": self.chip_size,
            "batch_size": self.batch_size,
            "train_size": self.train_size,
            "val_size": self.val_size,
        }
