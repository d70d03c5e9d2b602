"""The location probe: how much of a real map can each encoding, alone, recover from a location?

No images and no MAE: each encoding is fitted with the same small MLP head (and the same budget) to
predict a label of the `earth` world from the location only, and scored on locations it never saw:

* ``land``: the land/sea flag (1 km GLOBE mask) of points uniform by area on the sphere;
* ``zone``: the Köppen–Geiger zone (32 classes, ``Ocean`` included for coast pixels) of points
  uniform by area over land.

The encoding's learnable parts train together with the head (its own parameter groups and learning
rate scales, as in training); an encoding without trainable parameters is evaluated once and only
the head trains. ``none`` sees no location, so it learns the class prior: the majority-class rate.

**Points.** Drawn by `EarthWorld` (uniform by area, fixed by ``world_seed`` and the split, not by the
run seed, so seeds pair up). With ``split=region`` (the default) whole z3 tiles are held out as in
training (`clay_exp.data.splits`): ``train`` and ``test`` points lie outside them, ``test_heldout``
points inside. ``test`` asks whether the encoding separates places near the ones it was fitted on;
``test_heldout`` whether what it learned carries over to regions it never saw (memorising vs
generalising).

**Scores** (torchmetrics, on the test sets): accuracy, balanced accuracy (mean recall over the
classes present) and macro-F1; the same on the training points (``train/*``, in ``runs.csv``) shows
what was memorised. Written with `clay_exp.report`: ``comparison.md``/``.csv``, ``runs.csv`` and
``final_loss.png`` (here: accuracy per encoding). Encodings that cannot run on locations alone
(``oracle`` needs ``latents``) or whose optional package is missing are listed as skipped, with the
reason.

A plain PyTorch loop, not Lightning: a fit is a few hundred full-batch steps of a tiny model, and
Lightning's per-fit setup would cost more than the fit, times (encodings × tasks × seeds).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from clay_exp.data.earth import EarthWorld
from clay_exp.data.splits import HELDOUT_SET, SPLIT_CHOICES, make_region_split, set_filter
from clay_exp.encodings import catalog
from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.layers import mlp
from clay_exp.report import Comparison, Metric, Run, compare, to_markdown, write_report

#: The batch keys the probe can give an encoding: a location and nothing else.
PROBE_INPUTS = ("lat", "lon")
#: Scores per test set, as ``<set>/<score>`` metric keys.
SCORES = ("acc", "balanced_acc", "macro_f1")
TEST_SET, HELDOUT_TEST_SET = "test", "test_heldout"
#: Points per training and per test set: a full probe of ~17 encodings x 2 tasks x 3 seeds takes ~6 min
#: on a shared 2-core CPU with one thread (4000 each: ~11 min, rankings alike).
N_TRAIN = N_TEST = 2000
#: Largest number of points encoded in one call at evaluation (bounds memory for big encoders).
EVAL_CHUNK = 8192


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


@dataclass(frozen=True)
class FitSettings:
    """The head and the budget, the same for every encoding."""

    steps: int = 300
    lr: float = 1e-2
    hidden_dim: int = 64
    num_layers: int = 2
    batch_size: int | None = None  # None: full batch

    def __post_init__(self) -> None:
        counts = {"steps": self.steps, "hidden_dim": self.hidden_dim, "num_layers": self.num_layers}
        counts["batch_size"] = self.batch_size
        bad = [f"{k}={v!r}" for k, v in counts.items() if v is not None and (int(v) != v or v < 1)]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append(f"lr={self.lr!r}")
        if bad:
            raise ValueError(
                f"bad probe setting(s) {', '.join(bad)}: steps, hidden_dim, num_layers and batch_size "
                "must be integers >= 1 (batch_size None: full batch), lr a positive number"
            )


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


class ProbeHead(nn.Module):
    """`num_layers` GELU layers of `hidden_dim` (encodings.layers.mlp), then a linear classifier.

    A zero-width input (``none``) leaves only the biases: the head can learn the class prior.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 64, num_layers: int = 2) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # nn.init warns that initialising the (0, hidden) weight of a zero-width input is a no-op.
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            self.body = mlp(in_dim, hidden_dim, num_layers)
        self.classifier = nn.Linear(hidden_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.body(features))


def scores(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy (macro recall) and macro-F1; classes absent from both count not."""
    preds = logits.argmax(dim=-1)
    return {
        "acc": float(multiclass_accuracy(preds, labels, num_classes, average="micro")),
        "balanced_acc": float(multiclass_accuracy(preds, labels, num_classes, average="macro")),
        "macro_f1": float(multiclass_f1_score(preds, labels, num_classes, average="macro")),
    }


@dataclass
class ProbeFit:
    """What one fit gives the report."""

    metrics: dict[str, float]
    step_time_s: float
    params: int
    params_trainable: int
    train_loss: list[float] = field(default_factory=list)


def _encode(encoding: SpatialEncoding, points: PointSet) -> Tensor:
    """The encoding of every point, in chunks, without gradients."""
    with torch.no_grad():
        parts = [
            encoding({"lat": points.lat[i : i + EVAL_CHUNK], "lon": points.lon[i : i + EVAL_CHUNK]})
            for i in range(0, len(points), EVAL_CHUNK)
        ]
    return torch.cat(parts).float()


def fit_probe(
    make_encoding: Callable[[], SpatialEncoding], data: TaskData, seed: int, fit: FitSettings = FitSettings()
) -> ProbeFit:
    """Fit encoding + head on `data.train` with Adam (seeded init and batches), score the test sets."""
    torch.manual_seed(seed)
    encoding = make_encoding()
    head = ProbeHead(encoding.out_dim, len(data.classes), fit.hidden_dim, fit.num_layers)
    trainable = [p for p in encoding.parameters() if p.requires_grad]
    # The encoding's own groups keep their learning-rate scales (e.g. hierarchical's per-level rates).
    groups = [{"params": list(head.parameters())}, *encoding.param_groups()]
    optimizer = torch.optim.Adam(
        [{k: v for k, v in g.items() if k not in ("lr_scale", "name")} for g in groups], lr=fit.lr
    )
    for group, spec in zip(optimizer.param_groups, groups, strict=True):
        group["lr"] = fit.lr * spec.get("lr_scale", 1.0)
    encoding.attach_optimizer(optimizer)

    train, n = data.train, len(data.train)
    batch = n if fit.batch_size is None else min(fit.batch_size, n)
    order = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    # Nothing to learn in the encoding: its features are fixed, so compute them once.
    features = None if trainable else _encode(encoding.eval(), train)
    encoding.train(bool(trainable))
    head.train()
    losses = []
    for _ in range(fit.steps):
        idx = slice(None) if batch == n else torch.randint(n, (batch,), generator=order)
        if features is None:
            x = encoding({"lat": train.lat[idx], "lon": train.lon[idx]}).float()
        else:
            x = features[idx]
        loss = nn.functional.cross_entropy(head(x), train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    step_time = (time.perf_counter() - start) / fit.steps

    encoding.eval()
    head.eval()
    metrics = {}
    for name, points in {**data.tests, "train": train}.items():
        with torch.no_grad():
            logits = head(_encode(encoding, points))
        metrics |= {f"{name}/{k}": v for k, v in scores(logits, points.labels, len(data.classes)).items()}
    metrics["train/loss"] = losses[-1]
    return ProbeFit(
        metrics,
        step_time,
        sum(p.numel() for p in encoding.parameters()),
        sum(p.numel() for p in trainable),
        losses,
    )


# -- encodings ------------------------------------------------------------------------------------
def skip_reason(name: str) -> str | None:
    """Why encoding `name` cannot be probed (None if it can).

    Skipped: an encoding that reads batch keys besides a location, or whose optional package is not
    installed. Any other error building it is left to the fits, which report it as failed.
    """
    try:
        cls = get_class(catalog.encoding_config(name)["_target_"])
        needs = [k for k in getattr(cls, "inputs", PROBE_INPUTS) if k not in PROBE_INPUTS]
        if needs:
            return f"needs batch keys {needs} besides a location (the probe gives only lat, lon)"
        catalog.build_encoding(name)
    except ImportError as error:
        return f"{type(error).__name__}: {error}"
    except Exception:  # reported by every fit of this encoding instead
        pass
    return None


def build_encoding(name: str, seed: int) -> SpatialEncoding:
    """Encoding `name` as a training run with this seed builds it (some YAMLs draw from ``${seed}``)."""
    return catalog.build_encoding(name, [f"seed={seed}"])


def check_encodings(names: Sequence[str]) -> list[str]:
    """`names` (or every encoding when empty), validated against configs/encoding/."""
    known = catalog.encoding_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown encoding(s) {unknown}; choose from {known}")
    return list(names) or known


def check_tasks(task: str) -> list[ProbeTask]:
    if task not in TASK_CHOICES:
        raise ValueError(f"task={task!r} is not one of {list(TASK_CHOICES)}")
    return list(TASKS.values()) if task == "both" else [TASKS[task]]


# -- the whole probe ------------------------------------------------------------------------------
def probe_metrics(split: SplitSettings) -> list[Metric]:
    """The report's columns: test accuracy first (it ranks), then the other scores and held-out sets."""
    sets = [TEST_SET] + ([HELDOUT_TEST_SET] if split.split == "region" else [])
    return [Metric(f"{s}/{k}", higher_is_better=True) for s in sets for k in SCORES]


@dataclass
class ProbeResult:
    """Every fit as a report `Run` (skipped and failed ones included) and the facts around them."""

    runs: list[Run]
    majority: dict[str, dict[str, float]]  # task -> test set -> majority-class accuracy
    counts: dict[str, dict[str, int]]  # task -> set -> points
    skipped: dict[str, str]  # encoding -> why
    fit: FitSettings
    split: SplitSettings
    seconds: float = 0.0

    def comparison(self) -> Comparison:
        return compare(
            self.runs, probe_metrics(self.split), title="Location probe", description=self.describe()
        )

    def describe(self) -> str:
        """What the numbers are (the report's text above the tables)."""
        fit, split = self.fit, self.split
        n_train = ", ".join(f"{t} {c['train']}" for t, c in self.counts.items())
        lines = [
            "Each encoding alone (no images) plus the same MLP head "
            f"({fit.num_layers} GELU layers of {fit.hidden_dim}, then a linear classifier) is fitted to "
            "predict a label of the `earth` world from the location; the encoding's learnable parts train "
            f"too. Adam, lr {fit.lr:g} (times each encoding's own group scales), {fit.steps} steps, "
            f"{'full batch' if fit.batch_size is None else f'batches of {fit.batch_size}'}; training "
            f"points: {n_train}. Each value is the mean over seeds (init and batches) of a score on fixed "
            "test points: `acc` accuracy, `balanced_acc` mean recall over the classes present, `macro_f1` "
            "macro-averaged F1 (torchmetrics). Time / step: fit time / steps on the machine that ran it.",
            "",
        ]
        if split.split == "region":
            lines.append(
                f"Points are uniform by area (world_seed {split.world_seed}); z{split.heldout_zoom} tiles "
                f"(a {split.heldout_fraction:g} share, split seed {split.split_seed}) are held out: "
                "`test` points lie in the regions of the training points, `test_heldout` points only in "
                "the held-out tiles (generalising to unseen regions)."
            )
        else:
            lines.append(f"Points are uniform by area (world_seed {split.world_seed}), split at random.")
        lines.append("")
        for task, rates in self.majority.items():
            counts = ", ".join(f"{k} {v}" for k, v in self.counts[task].items())
            rate = ", ".join(f"{k} {v:.4f}" for k, v in rates.items())
            lines.append(
                f"- `{task}`: {TASKS[task].question} ({counts} points). Majority-class accuracy (the "
                f"training set's most common class everywhere; `none` cannot do better): {rate}."
            )
        if self.skipped:
            lines.append("")
            lines += [f"- Skipped `{name}`: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def _run(task: ProbeTask, split: SplitSettings, encoding: str, seed: int, status: str, **kw: Any) -> Run:
    return Run(
        path=Path(f"{task.name}-{encoding}-s{seed}"),
        encoding=encoding,
        seed=seed,
        status=status,
        setting={"task": task.name, "points": task.locations, "split": split.split},
        **kw,
    )


def run_probe(
    encodings: Sequence[str] = (),
    task: str = "both",
    seeds: Sequence[int] = (0, 1, 2),
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    fit: FitSettings = FitSettings(),
    split: SplitSettings = SplitSettings(),
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> ProbeResult:
    """Fit every encoding × task × seed; skipped and failed fits become runs the report lists."""
    started = time.perf_counter()
    names, tasks = check_encodings(encodings), check_tasks(task)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    skipped = {name: why for name in names if (why := skip_reason(name))}
    result = ProbeResult([], {}, {}, skipped, fit, split)
    for t in tasks:
        data = sample_points(t, n_train, n_test, split)
        result.majority[t.name] = data.majority_rates()
        result.counts[t.name] = {"train": len(data.train), **{k: len(v) for k, v in data.tests.items()}}
        for name in names:
            for seed in seeds:
                if name in skipped:
                    result.runs.append(_run(t, split, name, seed, "skipped", error=skipped[name]))
                    continue
                try:
                    done = fit_probe(lambda n=name, s=seed: build_encoding(n, s), data, seed, fit)
                except Exception as error:  # listed as failed in the report; the other fits go on
                    message = f"{type(error).__name__}: {error}"
                    log(f"{t.name} {name} seed {seed}: FAILED {message}")
                    result.runs.append(_run(t, split, name, seed, "failed", error=message))
                    continue
                log(
                    f"{t.name} {name} seed {seed}: test/acc {done.metrics['test/acc']:.4f} "
                    f"({done.step_time_s * 1000:.1f} ms/step)"
                )
                result.runs.append(
                    _run(
                        t, split, name, seed, "completed", metrics=done.metrics,
                        params_encoding=done.params, params_encoding_trainable=done.params_trainable,
                        step_time_s=done.step_time_s,
                    )
                )  # fmt: skip
    result.seconds = time.perf_counter() - started
    return result


def default_out_dir(root: str | Path = "logs/probe") -> Path:
    return Path(root) / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def write_probe(
    result: ProbeResult, out_dir: str | Path, settings: Mapping[str, Any] = {}
) -> tuple[Comparison, dict[str, Path]]:
    """The report files (clay_exp.report, no curves) plus ``probe.json``: settings, majority rates."""
    comparison = result.comparison()
    # The plot shows accuracy only (one panel per task and test set); the tables have every score.
    keys = [m.key for m in probe_metrics(result.split) if m.key.endswith("/acc")]
    written = write_report(comparison, result.runs, out_dir, curves=False, plot_keys=keys)
    written["probe.json"] = Path(out_dir) / "probe.json"
    facts = {
        "settings": dict(settings),
        "fit": asdict(result.fit),
        "split": asdict(result.split),
        "majority_rate": result.majority,
        "points": result.counts,
        "skipped": result.skipped,
        "seconds": result.seconds,
        "torch": torch.__version__,
    }
    written["probe.json"].write_text(json.dumps(facts, indent=2) + "\n")
    return comparison, written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="probe.py",
        description="Location probe: fit each encoding alone (+ the same MLP head) to predict the earth "
        "world's land/sea flag and Köppen–Geiger zone from location; report accuracy per encoding.",
    )
    parser.add_argument(
        "--encodings", nargs="+", default=[], help="encodings to probe (default: all in configs/encoding/)"
    )
    parser.add_argument("--task", default="both", help=f"one of {list(TASK_CHOICES)} (default: both)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="run seeds (model init)")
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help="training points per task")
    parser.add_argument("--n-test", type=int, default=N_TEST, help="points per test set")
    parser.add_argument("--steps", type=int, default=FitSettings.steps, help="Adam steps per fit")
    parser.add_argument("--lr", type=float, default=FitSettings.lr, help="Adam learning rate")
    parser.add_argument("--hidden-dim", type=int, default=FitSettings.hidden_dim, help="head width")
    parser.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: full batch)")
    parser.add_argument(
        "--split", default=SplitSettings.split, help=f"one of {list(SPLIT_CHOICES)}: hold z3 tiles out or not"
    )
    parser.add_argument("--world-seed", type=int, default=0, help="fixes the points (with --split-seed)")
    parser.add_argument("--split-seed", type=int, default=0, help="which tiles are held out")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: logs/probe/<time>)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: the fits are small; more "
        "threads mostly wait on each other, and stall badly on a busy machine)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        fit = FitSettings(args.steps, args.lr, args.hidden_dim, batch_size=args.batch_size)
        split = SplitSettings(args.split, split_seed=args.split_seed, world_seed=args.world_seed)
        check_encodings(args.encodings)
        check_tasks(args.task)
        if args.threads < 1 or args.n_train < 1 or args.n_test < 1:
            raise ValueError(
                f"--threads={args.threads}, --n-train={args.n_train} and --n-test={args.n_test} must be >= 1"
            )
    except ValueError as error:
        parser.error(str(error))
    out = args.out or default_out_dir()  # named by the start time, like a Hydra run folder
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = run_probe(args.encodings, args.task, args.seeds, args.n_train, args.n_test, fit, split)
    finally:  # a caller in the same process (a test, a notebook) keeps its own setting
        torch.set_num_threads(threads)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    comparison, written = write_probe(result, out, settings)
    print(to_markdown(comparison))
    print(
        f"\n{len(result.runs)} fits in {result.seconds:.0f} s; wrote "
        + ", ".join(str(p) for p in written.values()),
        file=sys.stderr,
    )
    return 0
