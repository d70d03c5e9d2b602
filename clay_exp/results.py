"""A run's record, ``results.json``: one schema, written by training and read by resume and the report.

One file per run, in the run's output folder, written atomically (temp file + rename,
`clay_exp.files.atomic_write`) so a reader never sees half a file, with mode 0644 (the umask
decides, as for every other file), and written whatever happened: ``status`` is ``completed``,
``failed`` (with the error), ``interrupted`` (with the signal) or, while the run lives, ``running``.
On a full disk the run's record is written into space reserved at its start (`SpaceReserve`).

`RunRecord` is the schema. Files written before it existed (no ``schema_version``: version 1) carry
the same keys and load unchanged; keys this version does not know are kept in ``extra`` and written
back, so a newer file read by older code loses nothing. A ``config`` is read with today's class
paths (`clay_exp.moved_targets`): a class it names that has moved since is renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clay_exp.files import SpaceReserve, atomic_write, find_below
from clay_exp.moved_targets import current_targets

RESULTS_FILE = "results.json"
STATUSES = ("running", "completed", "failed", "interrupted")
#: 2: the typed record (``schema_version``, ``error.cause``); 1: the same keys, unversioned.
SCHEMA_VERSION = 2


class UnreadableRecordError(ValueError):
    """A ``results.json`` that is not valid JSON or not a run record; names the file and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def error_info(error: BaseException) -> dict[str, str]:
    """The error as the record keeps it: type, message, traceback, and ``cause`` — the innermost
    exception of the chain on one line (Hydra wraps a constructor's ValueError in an
    ``InstantiationException`` whose first line says only ``Error in call to target ...``)."""
    root = error
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    message = str(root).strip()
    return {
        "type": type(error).__name__,
        "message": str(error),
        "cause": f"{type(root).__name__}: {message}" if message else type(root).__name__,
        "traceback": "".join(traceback.format_exception(error)),
    }


@dataclass
class RunRecord:
    """What one training run did and reached. Metric dicts map Lightning keys (``val/loss``,
    ``val_heldout/loss``, ...) to floats; None stands for a non-finite value."""

    status: str
    experiment: str | None = None
    encoding: str | None = None
    data: str | None = None
    injection: str | None = None
    seed: int | None = None
    output_dir: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    git: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    torch_threads: int | None = None
    params: dict[str, int] = field(default_factory=dict)
    final: dict[str, float | None] = field(default_factory=dict)
    best: dict[str, float | None] = field(default_factory=dict)
    steps: int | None = None
    epochs: int | None = None
    train_time_s: float | None = None
    step_time_s: float | None = None
    wall_time_s: float | None = None
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    wandb: dict[str, Any] | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)
    #: type, message, cause (one line), traceback; for ``interrupted`` also ``signal``.
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    #: In a study that declares tuning: the values of the arm's tuned knobs this run used and their
    #: source (a tuned file + its tuning run, a tuning trial, or "default (untuned)"); see
    #: clay_exp.tuning.record.
    tuning: dict[str, Any] | None = None
    #: A run trained with other seeds in one process (``seeds_per_process``, clay_exp.seed_group):
    #: the group's seeds, its folder, and its training time (``train_time_s`` here is a k-th of it).
    seed_group: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    #: Keys this schema does not know (written by a newer version), kept as they were.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"results status={self.status!r} is not one of {list(STATUSES)}")

    @property
    def failure_reason(self) -> str | None:
        """One line saying why the run did not complete (the innermost error), or None."""
        if not self.error:
            return None
        cause = self.error.get("cause")
        if cause:
            return str(cause)
        message = str(self.error.get("message") or "").strip().splitlines()
        return f"{self.error.get('type')}: {message[-1] if message else ''}".rstrip(": ")

    def metric(self, key: str) -> float | None:
        """A final metric as a finite float, or None."""
        value = self.final.get(key)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    # -- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in payload.items() if k in known and v is not None}
        values.setdefault("schema_version", 1)  # files written before the schema had a version
        if isinstance(values.get("config"), dict):  # a class its config names may have moved since
            values["config"] = current_targets(values["config"])
        extra = {k: v for k, v in payload.items() if k not in known}
        return cls(**values, extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        """Read a run folder's record (or the file itself); `UnreadableRecordError` names the file."""
        path = results_path(path)
        try:
            with path.open() as f:
                payload = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnreadableRecordError(path, f"{type(error).__name__}: {error}") from error
        if not isinstance(payload, dict) or "status" not in payload:
            raise UnreadableRecordError(path, "not a run record (a JSON object with a 'status')")
        try:
            return cls.from_dict(payload)
        except (TypeError, ValueError) as error:
            raise UnreadableRecordError(path, str(error)) from error

    def save(self, run_dir: str | Path, reserve: SpaceReserve | None = None) -> Path:
        """Write atomically into `run_dir` (the status is checked when the record is built); on a
        full disk into `reserve` (`record_reserve`) if given."""
        self.__post_init__()
        return write_json_atomic(Path(run_dir) / RESULTS_FILE, self.to_dict(), reserve=reserve)


def _jsonable(value: Any) -> Any:
    """Plain JSON: tensors/numpy scalars to numbers, non-finite floats to None, paths to str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: str | Path, payload: dict[str, Any], reserve: SpaceReserve | None = None) -> Path:
    """Write `payload` as JSON to `path` via a temp file in the same folder and an atomic rename
    (`clay_exp.files.atomic_write`; `reserve`: where to write it when the disk is full)."""
    text = json.dumps(_jsonable(payload), indent=2, sort_keys=False) + "\n"
    return atomic_write(path, text.encode(), reserve=reserve)


def record_reserve(run_dir: str | Path) -> SpaceReserve:
    """The space a run reserves at its start for its final record (``<run>/.results.json.reserve``)."""
    return SpaceReserve(run_dir, RESULTS_FILE)


def results_path(run: str | Path) -> Path:
    """The ``results.json`` of a run folder (or the file itself)."""
    path = Path(run)
    return path if path.name == RESULTS_FILE else path / RESULTS_FILE


def write_results(run_dir: str | Path, payload: dict[str, Any] | RunRecord) -> Path:
    """Write a record (or a dict in its schema, checked by building the record)."""
    record = payload if isinstance(payload, RunRecord) else RunRecord.from_dict(payload)
    return record.save(run_dir)


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """The raw JSON of one run's record, as written (tests and tools that want the file's content)."""
    with results_path(run_dir).open() as f:
        return json.load(f)


def find_result_files(root: str | Path) -> Iterator[Path]:
    """Every results.json below `root` (a run, a multirun or a folder of them), sorted; symlinked
    folders are followed (`clay_exp.files.find_below`)."""
    yield from find_below(root, RESULTS_FILE)


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit of the code that ran and whether the working tree had changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}
