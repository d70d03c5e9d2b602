"""Continuing an interrupted run in its own folder: which folder, which checkpoint, which metrics.

``python train.py <same overrides> resume=true`` continues the latest unfinished run of the
experiment; ``resume=<run folder>`` continues that one. The folder is decided once, while Hydra
composes (the ``run_dir`` resolver of ``configs/hydra/default.yaml``, registered by
`register_resolvers`), so Hydra's own log and config land in it too; `prepare_resume` then reads
what that folder holds (record, checkpoint step) and refuses a config that is not the run's own.

Checkpoints are read with ``torch.load(weights_only=True)``: a planted ``last.ckpt`` carrying pickled
code is refused, never executed (Lightning's own load, which follows, is safe in the same way).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import OmegaConf

from clay_exp.results import RESULTS_FILE, RunRecord, UnreadableRecordError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: Written every `callbacks.last_checkpoint.every_n_train_steps` steps at a batch end, the point at
#: which Lightning's loops restart consistently (step counters, scheduler, logging steps).
LAST_CHECKPOINT = "last.ckpt"
#: Config keys that may differ between a run and its continuation (``speed``: the same numbers either
#: way, and runs recorded before it existed have none).
RESUMABLE_CHANGES = (
    "paths", "resume", "ckpt_path", "callbacks", "trainer.max_epochs", "trainer.max_steps", "speed"
)  # fmt: skip


def _is_off(value: Any) -> bool:
    return value is None or value is False or str(value).lower() in ("false", "none", "null", "")


def _unfinished(run: Path) -> bool:
    try:
        return RunRecord.load(run).status != "completed"
    except UnreadableRecordError as error:
        log.warning("resume=true: skipping %s", error)
        return False


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
            if find_checkpoint(p.parent) is not None and _unfinished(p.parent)
        ]
        if not candidates:
            raise ValueError(f"resume=true: no unfinished run with a checkpoint under {runs}")
        return str(max(candidates, key=lambda p: p.stat().st_mtime))
    path = Path(str(resume)).expanduser().resolve()
    if find_checkpoint(path) is None:
        raise ValueError(f"resume={resume!r}: no {CHECKPOINT_DIR}/{LAST_CHECKPOINT} in {path}")
    return str(path)


def register_resolvers() -> None:
    """Register the ``run_dir`` resolver the Hydra configs use (call before composing)."""
    OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)


def find_checkpoint(run: str | Path) -> Path | None:
    """A run's last.ckpt, or None."""
    path = Path(run) / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def checkpoint_step(checkpoint: Path) -> int:
    """The ``global_step`` of a Lightning checkpoint, read without running any pickled code."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        return int(state["global_step"])
    except Exception as error:  # corrupt, truncated, foreign or carrying code: say which file
        first_line = (str(error).splitlines() or [""])[0]
        raise ValueError(
            f"resume: cannot use checkpoint {checkpoint}: {type(error).__name__}: {first_line} "
            "(checkpoints are loaded with weights_only=True: a file holding pickled code is refused)"
        ) from error


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _relative_to_paths(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config with values derived from its own ``paths`` (run folder, logs root)
    written relative to them, so a run folder that was moved or copied compares equal."""
    flat = _flatten(config)
    roots = sorted(
        {(k, str(v)) for k, v in flat.items() if k.startswith("paths.") and isinstance(v, str) and v},
        key=lambda kv: (-len(kv[1]), kv[0]),  # the longest (most specific) root first
    )

    def relative(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for key, root in roots:
            if value == root or value.startswith(root.rstrip("/") + "/"):
                return "${" + key + "}" + value[len(root) :]
        return value

    return {k: relative(v) for k, v in flat.items()}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs, except the resumable ones and the
    run's own location."""
    a, b = _relative_to_paths(old), _relative_to_paths(new)
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
    previous: RunRecord

    @property
    def wandb_id(self) -> str | None:
        return (self.previous.wandb or {}).get("id")


def prepare_resume(output_dir: Path, config: dict[str, Any]) -> ResumeState:
    """Check that the run in `output_dir` can be continued with `config`; find its checkpoint."""
    checkpoint = find_checkpoint(output_dir)
    if checkpoint is None:
        raise ValueError(
            f"resume: no checkpoint ({LAST_CHECKPOINT}) to continue from in {output_dir / CHECKPOINT_DIR}"
        )
    has_record = (output_dir / RESULTS_FILE).is_file()
    previous = RunRecord.load(output_dir) if has_record else RunRecord(status="interrupted")
    if previous.config:
        diff = config_differences(previous.config, config)
        if diff:
            raise ValueError(
                "resume: the config differs from the run being continued (pass the same overrides; only "
                f"{', '.join(RESUMABLE_CHANGES)} may change):\n  " + "\n  ".join(diff)
            )
    return ResumeState(checkpoint=checkpoint, step=checkpoint_step(checkpoint), previous=previous)


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


def restore_metrics(loggers: list[Logger], step: int) -> None:
    """Put the rows logged before the checkpoint's `step` back into the CSV log (its writer starts a
    new file)."""
    csv_logger = next((lg for lg in loggers if isinstance(lg, CSVLogger)), None)
    if csv_logger is None:
        return
    rows = metrics_before(Path(csv_logger.log_dir) / "metrics.csv", step)
    writer = csv_logger.experiment  # creating the writer removes the old file: rows are re-logged below
    for row in rows:
        row_step = int(row.pop("step"))
        writer.log_metrics(row, step=row_step)
    writer.save()
