"""Writing and reading a run's ``results.json`` (shared by train.py, compare.py and the notebook).

One file per run, in the run's output folder, written atomically (temp file + rename) so a reader
never sees half a file, and written whatever happened: ``status`` is ``completed``, ``failed`` (with
the error) or ``interrupted``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
STATUSES = ("running", "completed", "failed", "interrupted")


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


def write_json_atomic(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` as JSON to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(payload), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(run_dir: str | Path, payload: dict[str, Any]) -> Path:
    if payload.get("status") not in STATUSES:
        raise ValueError(f"results status={payload.get('status')!r} is not one of {list(STATUSES)}")
    return write_json_atomic(Path(run_dir) / RESULTS_FILE, payload)


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """The results of one run (a folder holding results.json, or the file itself)."""
    path = Path(run_dir)
    path = path if path.name == RESULTS_FILE else path / RESULTS_FILE
    with path.open() as f:
        return json.load(f)


def find_result_files(root: str | Path) -> Iterator[Path]:
    """Every results.json below `root` (a run, a multirun or a folder of them), sorted."""
    yield from sorted(Path(root).rglob(RESULTS_FILE))


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
