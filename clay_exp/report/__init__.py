"""The head-to-head report of a sweep: which encoding wins, by how much, how sure, at what cost.

Shared by ``scripts/compare.py`` (its command line), ``notebooks/compare_encodings.ipynb`` and any
other producer of per-encoding numbers (e.g. the location probe): build `Run` records (`load_runs`
reads them from ``results.json`` files), `compare` them on a list of `Metric` s, then `write_report`
writes ``comparison.md`` / ``comparison.csv`` / ``runs.csv`` and the plots.

One concern per module:

* `runs`: reading runs (`Run`, `load_runs`, `latest_sweep`, `metric_curve`; Hydra's layout, `HYDRA`);
* `stats`: intervals, paired tests, Holm's adjustment (`mean_ci`, `paired_t_test`, `holm`);
* `table`: the per-encoding table (`Metric`, `Row`, `Section`, `Comparison`, `compare`);
* `markdown`: the report as text (`to_markdown`, `section_markdown`);
* `plots`: the figures (`plot_loss_curves`, `plot_final`);
* `write`: the files (`write_report`, `comparison_frame`, `runs_frame`, `declared_frame`, `gaps_frame`);
* `study`: a pre-registered study (the runs' ``study`` config node): `Study`, `analyse_study`, the
  declared family (`declared_tests`), the gap closed (`gaps`), the ranking check (`ranking_check`);
* `bootstrap`: paired bootstraps over seeds (`gap_closed`, `spearman_ci`);
* `study_floors`: the information floors beside a study's losses, cached (`attach_floors`);
* `study_markdown`: a study as markdown (`study_markdown`), reported before the tables.

Statistics (stated in the report too): per encoding the mean over seeds with a Student-t 95 %
interval; between two encodings a two-sided paired t-test on the per-seed differences, with
Holm–Bonferroni adjustment over all pairs of a table, which is exploratory where the runs declare a
study: the study's own few comparisons are the Holm family that can reach significance (see
`clay_exp.report.study`). Runs that failed, did not finish or whose
record cannot be read are listed, never averaged in.
"""

from clay_exp.report.bootstrap import GapEstimate, gap_closed, spearman_ci
from clay_exp.report.markdown import section_markdown, to_markdown
from clay_exp.report.plots import plot_declared, plot_final, plot_loss_curves
from clay_exp.report.runs import (
    HYDRA,
    METRICS_CSV,
    UNREADABLE,
    HydraLayout,
    Run,
    latest_sweep,
    load_runs,
    metric_curve,
    run_from_record,
    run_from_results,
)
from clay_exp.report.stats import Summary, holm, mean_ci, paired_t_test
from clay_exp.report.study import (
    Declared,
    DeclaredTest,
    Study,
    StudyResult,
    analyse_studies,
    analyse_study,
    declared_tests,
    gaps,
    ranking_check,
)
from clay_exp.report.study_floors import FLOOR_CHIPS, attach_floors, floor_distances, study_floors
from clay_exp.report.study_markdown import study_markdown
from clay_exp.report.table import (
    BASELINE,
    IGNORED_CONFIG,
    LOSS_DESCRIPTION,
    LOSS_METRICS,
    YARDSTICK,
    Comparison,
    Metric,
    PairTest,
    Row,
    Section,
    compare,
)
from clay_exp.report.write import comparison_frame, declared_frame, gaps_frame, runs_frame, write_report

__all__ = [
    "BASELINE",
    "FLOOR_CHIPS",
    "HYDRA",
    "IGNORED_CONFIG",
    "LOSS_DESCRIPTION",
    "LOSS_METRICS",
    "METRICS_CSV",
    "UNREADABLE",
    "YARDSTICK",
    "Comparison",
    "Declared",
    "DeclaredTest",
    "GapEstimate",
    "HydraLayout",
    "Metric",
    "PairTest",
    "Row",
    "Run",
    "Section",
    "Study",
    "StudyResult",
    "Summary",
    "analyse_studies",
    "analyse_study",
    "attach_floors",
    "compare",
    "comparison_frame",
    "declared_frame",
    "declared_tests",
    "floor_distances",
    "gap_closed",
    "gaps",
    "gaps_frame",
    "holm",
    "latest_sweep",
    "load_runs",
    "mean_ci",
    "metric_curve",
    "paired_t_test",
    "plot_declared",
    "plot_final",
    "plot_loss_curves",
    "ranking_check",
    "run_from_record",
    "run_from_results",
    "runs_frame",
    "section_markdown",
    "spearman_ci",
    "study_floors",
    "study_markdown",
    "to_markdown",
    "write_report",
]
