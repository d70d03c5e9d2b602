"""The report of one or more sweeps from end to end: the one module that runs the analysis, then the
presentation (scripts/compare.py is its command line; the notebook calls the layers below it).

* `analyse_sweeps`: the runs of the folders (with the embedding probe's per-run files, where
  present), the flags checked against them, `compare` (tables, declared studies, reliance). A
  ValueError names bad input before anything is written.
* `write_sweep_report`: the information floors beside the studies, ``comparison.md`` / ``.csv``,
  ``runs.csv``, the plots (`write_report`), and the tuning section where the runs or the folders
  declare one (`write_tuning`, appended to ``comparison.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clay_exp.report.compare import Comparison, compare
from clay_exp.report.markdown import to_markdown
from clay_exp.report.metric import LOSS_METRICS, Metric
from clay_exp.report.reliance import attach_probe_metrics
from clay_exp.report.runs import UNREADABLE, Run, load_runs
from clay_exp.report.study_floors import FLOOR_CHIPS, attach_floors
from clay_exp.report.table import BASELINE, YARDSTICK
from clay_exp.report.tuning import ArmTuning, tuning_from_folder, tuning_from_runs
from clay_exp.report.tuning_markdown import tuning_markdown, write_tuning
from clay_exp.report.write import write_report
from clay_exp.tuning.plan import PLAN_FILE


def warn_on_stderr(message: str) -> None:
    """A problem the report works around, on stderr as ``warning: ...``."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class SweepReport:
    """What a report of sweeps holds once analysed (and, after `write_sweep_report`, written)."""

    runs: list[Run]
    comparison: Comparison
    #: The tuning section's arms (filled by `write_sweep_report`; empty where nothing was tuned).
    tuning: list[ArmTuning]
    #: The files written, by name (filled by `write_sweep_report`).
    written: dict[str, Path]

    def markdown(self) -> str:
        """``comparison.md`` as written: the comparison, then the tuning section where there is one."""
        return to_markdown(self.comparison) + ("\n" + tuning_markdown(self.tuning) if self.tuning else "")

    @property
    def left_out(self) -> int:
        """Runs listed in the report but in no average (failed, unfinished or unreadable)."""
        return sum(len(s.not_averaged) for s in self.comparison.sections) + len(self.comparison.unreadable)


def analyse_sweeps(
    dirs: Sequence[Path],
    metrics: Sequence[Metric] = LOSS_METRICS,
    confidence: float = 0.95,
    alpha: float = 0.05,
    baseline: str | None = None,
    yardstick: str | None = None,
    resamples: int = 2000,
    warn: Callable[[str], None] = warn_on_stderr,
) -> SweepReport:
    """The runs below `dirs`, compared (module docstring); `baseline` / `yardstick` None: the defaults
    (`BASELINE`, `YARDSTICK`), a name: it must have run. ValueError for bad input."""
    runs = load_runs(*dirs)
    for problem in attach_probe_metrics(runs):  # the embedding probe's per-run files, where present
        warn(f"embedding probe left out: {problem}")
    encodings = sorted({r.encoding for r in runs})
    for flag, name in (("--baseline", baseline), ("--yardstick", yardstick)):
        if name is not None and name not in encodings:  # a typo would silently drop the column
            raise ValueError(f"{flag}={name!r} ran in none of these sweeps; encodings: {encodings}")
    comparison = compare(
        runs,
        metrics,
        confidence,
        alpha,
        sources=dirs,
        baseline=baseline or BASELINE,
        yardstick=yardstick or YARDSTICK,
        resamples=resamples,
    )
    return SweepReport(runs, comparison, [], {})


def write_sweep_report(
    report: SweepReport,
    dirs: Sequence[Path],
    out_dir: Path,
    floors: bool | None = None,
    floor_chips: int = FLOOR_CHIPS,
    floors_json: Path | None = None,
    warn: Callable[[str], None] = warn_on_stderr,
) -> SweepReport:
    """Attach the floors (`floors` None: where the runs declare a study), write every file into
    `out_dir` and the tuning section of `dirs`; returns `report` with `tuning` and `written` set."""
    comparison = report.comparison
    if comparison.studies and floors is not False:
        attach_floors(comparison, out_dir, chips=floor_chips, floors_json=floors_json)
    for run in report.runs:
        if run.status == UNREADABLE:
            warn(f"left out of the report, unreadable: {run.error}")
    written = write_report(comparison, report.runs, out_dir)
    # the study's tuning, arm by arm: from the runs' records, or a tuning folder itself
    tuning = tuning_from_runs(report.runs) + [
        s for d in dirs if (d / PLAN_FILE).is_file() for s in tuning_from_folder(d)
    ]
    written |= write_tuning(tuning, out_dir, append_to=written.get("comparison.md"))
    report.tuning, report.written = tuning, written
    return report
