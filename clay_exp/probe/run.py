"""The whole probe: every encoding × task × seed, skipped and failed fits included, and its files.

Encodings come from configs/encoding/ (`clay_exp.catalog`); one that needs batch keys
besides a location or whose optional package is missing (its class's declarations) is skipped, with
the reason. The numbers are
written with `clay_exp.report` (``comparison.md``/``.csv``, ``runs.csv``, ``final_loss.png``) plus
``probe.json``.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from clay_exp import catalog
from clay_exp.encodings.base import SpatialEncoding
from clay_exp.probe.fit import SCORES, FitSettings, fit_probe
from clay_exp.probe.tasks import (
    HELDOUT_TEST_SET,
    N_TEST,
    N_TRAIN,
    TASKS,
    TEST_SET,
    ProbeTask,
    SplitSettings,
    check_tasks,
    sample_points,
)
from clay_exp.report import Comparison, Metric, Run, compare, write_report

#: The batch keys the probe can give an encoding: a location and nothing else.
PROBE_INPUTS = ("lat", "lon")


# -- encodings ------------------------------------------------------------------------------------
def skip_reason(name: str) -> str | None:
    """Why encoding `name` cannot be probed (None if it can): its class reads batch keys besides a
    location, or declares an optional package that is not installed (`clay_exp.catalog.unavailable_reason`).
    Any other error building it is left to the fits, which report it as failed.
    """
    return catalog.unavailable_reason(name, PROBE_INPUTS)


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
    fit: FitSettings = FitSettings(),  # noqa: B008 (frozen dataclasses: immutable defaults)
    split: SplitSettings = SplitSettings(),  # noqa: B008
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
