"""The probe's tasks and points: which label of the earth world, at which locations, in which sets.

Points are drawn by `EarthWorld` (uniform by area, fixed by ``world_seed`` and the split, not by the
run seed, so seeds pair up). With ``split=region`` (the default) whole z3 tiles are held out as in
training (`clay_exp.data.splits`): ``train`` and ``test`` points lie outside them, ``test_heldout``
points inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from clay_exp.data.splits import HELDOUT_SET, make_region_split, set_filter
from clay_exp.data.worlds.earth import EarthWorld

TEST_SET, HELDOUT_TEST_SET = "test", "test_heldout"
#: Points per training and per test set: a full probe of ~17 encodings x 2 tasks x 3 seeds takes ~6 min
#: on a shared 2-core CPU with one thread (4000 each: ~11 min, rankings alike).
N_TRAIN = N_TEST = 2000


@dataclass(frozen=True)
class ProbeTask:
    """A label of the earth world to predict from location, and where its points are drawn."""

    name: str
    locations: str  # GeneratedWorld's location kinds: "sphere" or "land"
    question: str

    def class_names(self, world: EarthWorld) -> tuple[str, ...]:
        return ("sea", "land") if self.name == "land" else world.zone_names

    def labels(self, world: EarthWorld, lat: Tensor, lon: Tensor) -> Tensor:
        zone, land = world.zone_and_land(lat, lon)
        return land.long() if self.name == "land" else zone


TASKS = {
    "land": ProbeTask("land", "sphere", "land or sea, for points uniform by area on the sphere"),
    "zone": ProbeTask("zone", "land", "the Köppen–Geiger zone, for points uniform by area over land"),
}
TASK_CHOICES = (*TASKS, "both")


@dataclass
class PointSet:
    """Locations (float64 degrees) and their class ids."""

    lat: Tensor
    lon: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TaskData:
    """One task's fixed points: the training set and the test sets (``test``, ``test_heldout``)."""

    task: ProbeTask
    classes: tuple[str, ...]
    train: PointSet
    tests: dict[str, PointSet]

    def majority_rates(self) -> dict[str, float]:
        """Accuracy of always predicting the training set's most common class, per test set."""
        majority = int(torch.bincount(self.train.labels, minlength=len(self.classes)).argmax())
        return {name: float((s.labels == majority).double().mean()) for name, s in self.tests.items()}


@dataclass(frozen=True)
class SplitSettings:
    """Where the points come from: the earth world's seed and the split of regions (as in training)."""

    split: str = "region"
    heldout_zoom: int = 3
    heldout_fraction: float = 0.25
    split_seed: int = 0
    world_seed: int = 0

    def __post_init__(self) -> None:
        make_region_split(self.split, self.heldout_zoom, self.heldout_fraction, self.split_seed)


def sample_points(
    task: ProbeTask, n_train: int, n_test: int, split: SplitSettings = SplitSettings()
) -> TaskData:
    """The task's train and test points (fixed by `split`), labelled in one vectorised look-up each."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train={n_train!r} and n_test={n_test!r} must be >= 1")
    region = make_region_split(split.split, split.heldout_zoom, split.heldout_fraction, split.split_seed)
    # (set, the world split whose chip ids it draws (disjoint ids), its region filter's set name)
    sets = [("train", "train", "train", n_train), (TEST_SET, "test", "train", n_test)]
    if region is not None:  # held-out tiles: test points inside them, the others outside
        sets.append((HELDOUT_TEST_SET, "test", HELDOUT_SET, n_test))
    points: dict[str, PointSet] = {}
    for name, world_split, filter_set, n in sets:
        world = EarthWorld(
            n, world_split, world_seed=split.world_seed, locations=task.locations,
            region=set_filter(region, filter_set),
        )  # fmt: skip
        lat, lon = world.locations(torch.arange(n) + world.offset)
        points[name] = PointSet(lat, lon, task.labels(world, lat, lon))
    train = points.pop("train")
    return TaskData(task, task.class_names(world), train, points)


def check_tasks(task: str) -> list[ProbeTask]:
    if task not in TASK_CHOICES:
        raise ValueError(f"task={task!r} is not one of {list(TASK_CHOICES)}")
    return list(TASKS.values()) if task == "both" else [TASKS[task]]
