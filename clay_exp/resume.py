"""Continuing an interrupted run in its own folder: which folder, which checkpoint, which metrics.

``python train.py <same overrides> resume=true`` continues the latest unfinished run of the
experiment; ``resume=<run folder>`` continues that one. The folder is decided once, while Hydra
composes (the ``run_dir`` resolver of ``configs/hydra/default.yaml``, registered by
`register_resolvers`), so Hydra's own log and config land in it too; `prepare_resume` then reads
what that folder holds (record, checkpoint step) and refuses a config that is not the run's own.

Checkpoints are read with ``torch.load(weights_only=True)``: a planted ``last.ckpt`` carrying pickled
code is refused, never executed (Lightning's own load, which follows, is safe in the same way).
They are written by `AtomicCheckpointIO` (a temp file in the checkpoint's own folder, fsynced, then
``os.replace``), so a process killed mid-save leaves the previous ``last.ckpt`` whole.

A run whose folder has no readable ``results.json`` cannot have its config checked, so ``resume=``
refuses it unless ``resume_force=true``. The learning-rate schedule a run started with is kept by
its continuations (`clay_exp.optim.WarmupCosine`), and the record says so (docs/reliability.md).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import OmegaConf

from clay_exp.files import atomic_write
from clay_exp.results import RESULTS_FILE, RunRecord, UnreadableRecordError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: Written every `callbacks.last_checkpoint.every_n_train_steps` steps at a batch end, the point at
#: which Lightning's loops restart consistently (step counters, scheduler, logging steps).
LAST_CHECKPOINT = "last.ckpt"
#: Config keys that may differ between a run and its continuation (``speed``: the same numbers either
#: way, and runs recorded before it existed have none).
RESUMABLE_CHANGES = (
    "paths", "resume", "resume_force", "ckpt_path", "callbacks", "trainer.max_epochs", "trainer.max_steps",
    "data.cache_max_age_days", "speed",
)  # fmt: skip
#: A folder name made of letters, digits, '.', '_' and '-', not starting with a dot (no '..', no '/').
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def safe_name(name: Any, key: str = "experiment_name") -> str:
    """`name` if it can name one folder under ``logs/`` (`SAFE_NAME`), else a ValueError naming it
    and the rule (``experiment_name=../../x`` would write outside ``logs/``)."""
    text = str(name)
    if not SAFE_NAME.fullmatch(text):
        raise ValueError(
            f"{key}={text!r} is not a safe folder name (it names logs/<{key}>/): use 1 to 100 "
            "letters, digits, '.', '_' or '-', not starting with a dot"
        )
    return text


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
        raise ValueError(
            f"resume={resume!r}: no {CHECKPOINT_DIR}/{LAST_CHECKPOINT} in {path}; pass a run folder "
            "(logs/<experiment>/runs/<date>) or resume=true (the latest unfinished run)"
        )
    return str(path)


def _one_line_errors(resolver: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        try:
            return resolver(*args)
        except ValueError as error:
            raise SystemExit(f"Error: {error}") from None

    return wrapped


def register_resolvers(one_line_errors: bool = False) -> None:
    """Register the resolvers the Hydra configs use (call before composing): ``run_dir`` (the run
    folder) and ``safe_name`` (`safe_name`). `one_line_errors` (train.py's command line): a bad value
    ends the process with its one-line error and exit code 1, nothing written, instead of the long
    report Hydra gives for an error raised inside a resolver."""
    for name, resolver in (("run_dir", run_dir), ("safe_name", safe_name)):
        resolver = _one_line_errors(resolver) if one_line_errors else resolver
        OmegaConf.register_new_resolver(name, resolver, replace=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, but a local save never damages the file it replaces.

    Lightning writes through fsspec, which on a run folder in another filesystem than ``$TMPDIR``
    copies over the target in place: a process killed mid-save left a 0-byte ``last.ckpt``. Here
    the checkpoint goes to ``<target>.tmp-<pid>-<random>`` in the same folder, is fsynced and
    renamed over the target (`clay_exp.files.atomic_write`); a full disk raises `DiskFullError`
    with the previous checkpoint untouched and no partial file left. Temp files of a killed save
    are deleted when the run folder is next opened (`RunSession`) and never match ``*.ckpt``.
    Remote paths (``s3://...``) keep Lightning's own way.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        advice = f"the previous {Path(path).name} is kept; free space, then resume=<the run folder>"
        with buffer.getbuffer() as data:
            atomic_write(path, data, advice=advice)


def find_checkpoint(run: str | Path) -> Path | None:
    """A run's last.ckpt, or None."""
    path = Path(run) / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def checkpoint_step(checkpoint: Path) -> int:
    """The ``global_step`` of a Lightning checkpoint, read without running any pickled code."""
    return int(read_checkpoint(checkpoint)["global_step"])


def checkpoint_schedule(state: dict[str, Any]) -> dict[str, int] | None:
    """The learning-rate schedule a checkpoint's scheduler carries (`WarmupCosine`'s steps), if any."""
    for scheduler in state.get("lr_schedulers") or []:
        for factor in scheduler.get("lr_lambdas") or []:
            if isinstance(factor, dict) and "total" in factor:
                return {"total_steps": int(factor["total"]), "warmup_steps": int(factor.get("warmup", 0))}
    return None


def read_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """A Lightning checkpoint's state, read without running any pickled code (``weights_only``);
    a ValueError names the file if it is corrupt, truncated, foreign or carries code."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        int(state["global_step"])
        return state
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
    #: The learning-rate schedule the checkpoint carries (kept by the continuation), or None.
    schedule: dict[str, int] | None = None
    #: Why the config could not be checked, when ``resume_force=true`` continued anyway.
    forced: str | None = None

    @property
    def wandb_id(self) -> str | None:
        return (self.previous.wandb or {}).get("id")

    def entry(self, at: str) -> dict[str, Any]:
        """This continuation as the record lists it under ``resumed``."""
        out: dict[str, Any] = {"checkpoint": str(self.checkpoint), "step": self.step, "at": at}
        if self.schedule is not None:
            out["lr_schedule"] = {
                "policy": "kept: the run's original schedule; steps past its end hold its final rate",
                **self.schedule,
            }
        if self.forced:
            out["forced"] = self.forced
        return out


def _unchecked_reason(output_dir: Path) -> tuple[RunRecord | None, str | None]:
    """The run's record, or why its config cannot be compared (no record, unreadable, no config)."""
    if not (output_dir / RESULTS_FILE).is_file():
        return None, f"it has no {RESULTS_FILE}"
    try:
        previous = RunRecord.load(output_dir)
    except UnreadableRecordError as error:
        return None, f"its {RESULTS_FILE} cannot be read ({error.reason})"
    return previous, None if previous.config else f"its {RESULTS_FILE} holds no config"


def prepare_resume(output_dir: Path, config: dict[str, Any], force: bool = False) -> ResumeState:
    """Check that the run in `output_dir` can be continued with `config`; find its checkpoint.

    A run whose config cannot be read (no or an unreadable ``results.json``) is refused unless
    `force` (``resume_force=true``): its config could not be compared with this one.
    """
    checkpoint = find_checkpoint(output_dir)
    if checkpoint is None:
        raise ValueError(
            f"resume: no checkpoint ({LAST_CHECKPOINT}) to continue from in {output_dir / CHECKPOINT_DIR}"
        )
    state = read_checkpoint(checkpoint)  # first: a checkpoint that is unusable, or carries code, says so
    previous, unchecked = _unchecked_reason(output_dir)
    if unchecked and not force:
        raise ValueError(
            f"resume: {output_dir} cannot be checked: {unchecked}, so this config cannot be compared "
            "with the run's own; pass the run's own overrides and resume_force=true to continue anyway"
        )
    if previous is not None and previous.seed_group:
        raise ValueError(
            f"resume: {output_dir} was trained with seeds {previous.seed_group.get('seeds')} in one process "
            "(seeds_per_process / seed_group); its checkpoints hold its weights and optimizer but not a "
            "Trainer's loop state, so it cannot be continued as a single run yet: rerun its group"
        )
    if unchecked:
        log.warning("resume_force=true: continuing %s unchecked (%s)", output_dir, unchecked)
    if previous is not None and previous.config:
        diff = config_differences(previous.config, config)
        if diff:
            raise ValueError(
                "resume: the config differs from the run being continued (pass the same overrides; only "
                f"{', '.join(RESUMABLE_CHANGES)} may change):\n  " + "\n  ".join(diff)
            )
    return ResumeState(
        checkpoint=checkpoint,
        step=int(state["global_step"]),
        previous=previous or RunRecord(status="interrupted"),
        schedule=checkpoint_schedule(state),
        forced=unchecked,
    )


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
