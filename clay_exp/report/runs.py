"""Reading runs: one `Run` per job folder of a sweep, whatever became of the job.

A run's record is ``results.json`` (`clay_exp.results.RunRecord`); a job folder Hydra made whose run
never wrote one is read from Hydra's own files (status ``missing``), and a record that cannot be
parsed is kept with status ``unreadable`` and the parse error, so that one bad file never hides the
others; a loss curve (``csv/metrics.csv``) that cannot be read is left out with a warning naming
the file. Folders are searched through symlinks (a sweep linked into a study folder is read). Where
Hydra puts things is named once, in `HYDRA`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from clay_exp.files import find_below
from clay_exp.report.metric import Metric
from clay_exp.results import RESULTS_FILE, RunRecord, UnreadableRecordError, find_result_files

log = logging.getLogger(__name__)

#: The status of a run whose ``results.json`` is not a readable record (never averaged).
UNREADABLE = "unreadable"
#: The CSV logger's file of logged metrics, inside a run folder (the loss curves).
METRICS_CSV = Path("csv") / "metrics.csv"


@dataclass(frozen=True)
class HydraLayout:
    """Where Hydra puts a job's files and a sweep's folders (configs/hydra/default.yaml)."""

    #: In every job folder, written at the job's start: the composed config and Hydra's own
    #: (``runtime.choices``: which option of each config group). A job folder without results.json
    #: never reached train().
    job_dir: str = ".hydra"
    job_config: str = "config.yaml"
    hydra_config: str = "hydra.yaml"
    #: ``<log_dir>/<experiment>/multiruns/<date>_<time>``: dated names, so they sort in time.
    multiruns: str = "multiruns"

    def job_file(self, job: Path, name: str) -> Path:
        return job / self.job_dir / name


HYDRA = HydraLayout()


@dataclass
class Run:
    """One run as the report sees it (one job folder of a sweep, or one probe fit).

    `setting` holds what must be equal for runs to share a table (experiment, world), `variant`
    what may differ between rows of one table (e.g. the injection); `metrics` the final values.
    `error` is one line: why the run did not complete, or why its record could not be read.
    """

    path: Path
    encoding: str
    seed: int | None
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    setting: dict[str, str] = field(default_factory=dict)
    variant: dict[str, str] = field(default_factory=dict)
    params_encoding: int | None = None
    params_encoding_trainable: int | None = None
    step_time_s: float | None = None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    #: Optimizer steps the run took (its training budget; a study report states it).
    steps: int | None = None

    def usable(self, metric: Metric) -> bool:
        return self.status == "completed" and metric.key in self.metrics


def per_seed(runs: Iterable[Run], metric: Metric) -> dict[int, float]:
    """`metric` of the usable runs by seed (the mean if a seed ran twice): how every part of the
    report pairs runs."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        if r.usable(metric) and r.seed is not None:
            by_seed.setdefault(r.seed, []).append(r.metrics[metric.key])
    return {s: float(np.mean(v)) for s, v in by_seed.items()}


def run_from_record(path: Path, record: RunRecord) -> Run:
    """A `Run` from one run's record (`RunRecord.load`); non-finite metrics are left out."""
    metrics = {k: v for k in record.final if (v := record.metric(k)) is not None}
    return Run(
        path=path,
        encoding=str(record.encoding),
        seed=record.seed,
        status=record.status,
        metrics=metrics,
        setting={"experiment": str(record.experiment), "data": str(record.data)},
        variant={"injection": str(record.injection)},
        params_encoding=record.params.get("encoding"),
        params_encoding_trainable=record.params.get("encoding_trainable"),
        step_time_s=record.step_time_s,
        error=record.failure_reason,
        config=record.config,
        steps=record.steps,
    )


def run_from_results(path: Path, results: dict[str, Any]) -> Run:
    """A `Run` from the JSON of one ``results.json`` (as clay_exp.train writes it)."""
    return run_from_record(path, RunRecord.from_dict(results))


def _from_hydra(job_dir: Path, status: str, error: str) -> Run:
    """A run known only from the files Hydra wrote at the job's start (raises if they are unreadable)."""
    config = OmegaConf.load(HYDRA.job_file(job_dir, HYDRA.job_config))
    choices = OmegaConf.load(HYDRA.job_file(job_dir, HYDRA.hydra_config)).hydra.runtime.choices
    return Run(
        path=job_dir,
        encoding=str(choices.get("encoding")),
        seed=config.get("seed"),
        status=status,
        setting={"experiment": str(config.get("experiment_name")), "data": str(choices.get("data"))},
        variant={"injection": str(config.get("injection"))},
        error=error,
    )


def _run_without_results(job_dir: Path) -> Run:
    """A job folder Hydra made whose run never wrote results.json (it died before training started)."""
    why = f"no {RESULTS_FILE}: the job ended before training started (see its train.log)"
    try:
        return _from_hydra(job_dir, "missing", why)
    except Exception as error:  # Hydra's own files are broken too: still listed, never averaged
        file = job_dir / HYDRA.job_dir
        return Run(job_dir, "?", None, UNREADABLE, error=f"{file}: {type(error).__name__}: {error}")


def _unreadable_run(job_dir: Path, error: UnreadableRecordError) -> Run:
    """A run whose record is not valid: placed by Hydra's files where the folder has them."""
    why = f"{error.path}: {error.reason}"
    try:
        return _from_hydra(job_dir, UNREADABLE, why)
    except Exception:  # no (readable) Hydra files: a run of no known setting
        return Run(job_dir, "?", None, UNREADABLE, error=why)


def load_runs(*roots: str | Path) -> list[Run]:
    """Every run below `roots` (sweep folders, run folders or folders of them), failed ones included.

    A ``results.json`` that cannot be read becomes a run with status ``unreadable`` whose `error`
    names the file and the parse error; it never stops the others from loading.
    """
    if not roots:
        raise ValueError("no folder given: pass one or more multirun (or run) folders")
    runs: list[Run] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise ValueError(f"{str(root)!r} is not a folder (expected a multirun folder under logs/)")
        found = {p.parent for p in find_result_files(root)}
        for job in sorted(found):
            try:
                runs.append(run_from_record(job, RunRecord.load(job)))
            except UnreadableRecordError as error:
                runs.append(_unreadable_run(job, error))
        hydra_marker = f"{HYDRA.job_dir}/{HYDRA.hydra_config}"
        runs += [
            _run_without_results(p.parent.parent)
            for p in find_below(root, hydra_marker)
            if p.parent.parent not in found
        ]
    if not runs:
        raise ValueError(f"no runs (results.json or Hydra job folders) below {[str(r) for r in roots]}")
    return runs


def latest_sweep(log_dir: str | Path = "logs", experiment: str = "compare_encodings") -> Path:
    """The newest multirun folder of `experiment` (folder names are dates, so they sort in time)."""
    sweeps = sorted(p for p in (Path(log_dir) / experiment / HYDRA.multiruns).glob("*") if p.is_dir())
    if not sweeps:
        raise ValueError(f"no multirun of {experiment!r} under {str(log_dir)!r}: run train.py -m first")
    return sweeps[-1]


def metric_curve(run: Run, metric: str = "val/loss") -> pd.Series:
    """`metric` against the training step from the run's CSV log: empty if it logged none, or if the
    file cannot be parsed (empty, binary, torn: a warning names it); rows whose step or value is not
    a finite number are skipped, with a warning counting them."""
    path = run.path / METRICS_CSV
    if not path.is_file():
        return pd.Series(dtype=float)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = (str(error).splitlines() or [""])[0]
        log.warning("%s: unreadable (%s: %s); no loss curve for this run", path, type(error).__name__, reason)
        return pd.Series(dtype=float)
    if metric not in frame or "step" not in frame:
        return pd.Series(dtype=float)
    steps = pd.to_numeric(frame["step"], errors="coerce").to_numpy(float)
    values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(float)
    good = np.isfinite(steps) & np.isfinite(values)
    bad = int((frame[metric].notna().to_numpy() & ~good).sum())
    if bad:
        log.warning("%s: %d row(s) whose step or %s is not a number were skipped", path, bad, metric)
    return pd.Series(values[good], index=steps[good].astype(int), name=run.seed)
