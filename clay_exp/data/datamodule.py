"""LightningDataModule for generated worlds: train/val splits, batched generation, worker settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from clay_exp.data.base import SplitDataModule

log = logging.getLogger(__name__)


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


class RenderedChips(Dataset):
    """Every chip of a world's set, rendered once and kept: batches are rows of stored tensors.

    A generated world's chip is a pure function of its id (clay_exp.data.worlds.world), so a finite set
    (``train_size`` or ``val_size`` chips, the same every epoch) can be rendered once per process
    instead of once per epoch. The set is rendered in consecutive batches of `chunk` chips, as a
    sequential loader of that batch size asks for them: a validation batch is then bitwise the
    batch the world renders, and so is a full shuffled training batch (the world's vectorised
    float maths gives a chip the same value in any batch whose size is a multiple of the SIMD width).
    """

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        lengths = {len(v) for v in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"rendered tensors must share their first dimension, got {sorted(lengths)}")
        self.tensors = tensors
        self.length = lengths.pop()

    @classmethod
    def render(cls, world: Dataset, chunk: int, max_mb: float) -> RenderedChips | None:
        """`world`'s chips rendered in batches of `chunk`, or None (nothing kept) when they would take
        more than `max_mb` MiB: the size is judged from the first batch, before the rest is rendered."""
        n = len(world)
        first = world.__getitems__(list(range(min(chunk, n))))
        mb = sum(v.element_size() * v[0].numel() for v in first.values()) * n / 2**20
        if mb > max_mb:
            log.info("%d chips would take %.0f MiB > %.0f MiB: rendered per batch instead", n, mb, max_mb)
            return None
        rest = [world.__getitems__(list(range(i, min(i + chunk, n)))) for i in range(chunk, n, chunk)]
        parts = [first, *rest]
        return cls({k: torch.cat([p[k] for p in parts]) for k in first})

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return {k: v[idx] for k, v in self.tensors.items()}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}


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
        #: Sets served from chips rendered once (`render_once`); the others are rendered per batch.
        self.rendered: dict[str, RenderedChips] = {}
        self.render_once_mb = 0.0

    def render_once(self, max_mb: float) -> None:
        """Render each set's chips once, in `setup`, and serve batches from them, for every set that
        fits in `max_mb` MiB (0: off, every batch rendered when asked for). The speed setting
        ``speed.render_once_mb`` (clay_exp.speed) calls this."""
        if not max_mb >= 0:
            raise ValueError(f"speed.render_once_mb={max_mb!r} must be >= 0 (0: render every batch)")
        self.render_once_mb = float(max_mb)

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
        if self.render_once_mb > 0:  # after observe_training: what a chip carries is final
            for name, dataset in self.datasets.items():
                if name not in self.rendered:
                    rendered = RenderedChips.render(dataset, self.batch_size, self.render_once_mb)
                    if rendered is not None:
                        self.rendered[name] = rendered

    def set_dataloader(self, name: str) -> DataLoader:
        dataset = self.rendered[name] if name in self.rendered else self.datasets[name]
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
