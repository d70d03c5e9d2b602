"""Continuing an interrupted run in its own folder: which folder, which checkpoint, which metrics.

``python train.py <same overrides> resume=true`` continues the latest unfinished run of the
experiment; ``resume=<run folder>`` continues that one. The run folder is chosen while Hydra
composes (the ``run_dir`` resolver in ``configs/hydra/default.yaml``), so Hydra's own log and config
land in the same folder; `train` then restores the checkpoint (weights, optimizer, step counters),
keeps the metrics logged up to the checkpoint's step, and reopens the same wandb run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from clay_exp.results import RESULTS_FILE, read_results

CHECKPOINT_DIR = "checkpoints"
#: Written every `callbacks.last_checkpoint.every_n_train_steps` steps at a batch end, the point at
#: which Lightning's loops restart consistently (step counters, scheduler, logging steps).
LAST_CHECKPOINT = "last.ckpt"
#: Config keys that may differ between a run and its continuation.
RESUMABLE_CHANGES = ("paths", "resume", "ckpt_path", "callbacks", "trainer.max_epochs", "trainer.max_steps")


def _is_off(value: Any) -> bool:
    return value is None or value is False or str(value).lower() in ("false", "none", "null", "")


def run_dir(resume: Any, fresh: str) -> str:
    """The run folder: `fresh` (a new timestamped folder) unless resuming.

    `resume` = true picks the most recent unfinished run beside `fresh` (same experiment); a path
    picks that run. Raises ValueError when there is nothing to resume.
    """
    if _is_off(resume):
        return fresh
    if resume is True or str(resume).lower() == "true":
        runs = Path(fresh).parent
        candidates = [
            p.parent
            for p in runs.glob(f"*/{RESULTS_FILE}")
            if read_results(p.parent).get("status") != "completed" and find_checkpoint(p.parent) is not None
        ]
        if not candidates:
            raise ValueError(f"resume=true: no unfinished run with a checkpoint under {runs}")
        return str(max(candidates, key=lambda p: p.stat().st_mtime))
    path = Path(str(resume)).expanduser().resolve()
    if find_checkpoint(path) is None:
        raise ValueError(f"resume={resume!r}: no {CHECKPOINT_DIR}/{LAST_CHECKPOINT} in {path}")
    return str(path)


OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)


def find_checkpoint(run: str | Path) -> Path | None:
    """A run's last.ckpt, or None."""
    path = Path(run) / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs, except the resumable ones."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(set(a) | set(b))
    return [
        f"{k}: {a.get(k, '<missing>')!r} -> {b.get(k, '<missing>')!r}"
        for k in keys
        if a.get(k) != b.get(k) and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_CHANGES)
    ]


@dataclass
class ResumeState:
    checkpoint: Path
    step: int
    previous: dict[str, Any]

    @property
    def wandb_id(self) -> str | None:
        return (self.previous.get("wandb") or {}).get("id")


def prepare_resume(output_dir: Path, config: dict[str, Any]) -> ResumeState:
    """Check that the run in `output_dir` can be continued with `config`; find its checkpoint."""
    checkpoint = find_checkpoint(output_dir)
    if checkpoint is None:
        raise ValueError(
            f"resume: no checkpoint ({LAST_CHECKPOINT}) to continue from in {output_dir / CHECKPOINT_DIR}"
        )
    previous = read_results(output_dir) if (output_dir / RESULTS_FILE).is_file() else {}
    if previous.get("config"):
        diff = config_differences(previous["config"], config)
        if diff:
            raise ValueError(
                "resume: the config differs from the run being continued (pass the same overrides; only "
                f"{', '.join(RESUMABLE_CHANGES)} may change):\n  " + "\n  ".join(diff)
            )
    step = int(torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"])
    return ResumeState(checkpoint=checkpoint, step=step, previous=previous)


def metrics_before(metrics_file: Path, step: int) -> list[dict[str, str]]:
    """Rows of a CSVLogger metrics file logged before `step` (later ones are logged again on resume)."""
    if not metrics_file.is_file():
        return []
    with metrics_file.open(newline="") as f:
        return [
            {k: v for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
            if row.get("step") and int(row["step"]) < step
        ]
