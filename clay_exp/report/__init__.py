"""The head-to-head report of a sweep: which encoding wins, by how much, how sure, at what cost.

Shared by ``scripts/compare.py`` (its command line), ``notebooks/compare_encodings.ipynb`` and any
other producer of per-encoding numbers (e.g. the location probe): build `Run` records (`load_runs`
reads them from ``results.json`` files), `compare` them on a list of `Metric` s, then `write_report`
writes ``comparison.md`` / ``comparison.csv`` / ``runs.csv`` and the plots.

One concern per module, in layers: each imports only modules of the layers before its own.

* reading and numbers: `metric` (`Metric`, `LOSS_METRICS`), `stats` (intervals, paired tests,
  Holm's adjustment: `mean_ci`, `paired_t_test`, `holm`), `runs` (`Run`, `load_runs`,
  `latest_sweep`, `metric_curve`, `per_seed`; Hydra's layout, `HYDRA`), `bootstrap` (paired
  bootstraps over seeds: `gap_closed`, `spearman_ci`);
* analysis: `table` (the per-encoding table: `Row`, `Section`, `compare_section`),
  `study_declaration` (`Study`, `Declared`) and `study` (`analyse_study`, the declared family
  `declared_tests`, the gap closed `gaps`, the ranking check `ranking_check`), `reliance`
  (reliance, robustness, prior, probe per arm), `tuning` (the tuning section, gathered);
  `compare` (`compare`: all of a sweep's analysis into one `Comparison`), `study_floors` (the
  information floors beside a study's losses, cached: `attach_floors`);
* presentation, reading what the analysis gave and computing nothing: `format` (`fmt`, `fmt_p`),
  `study_markdown`, `reliance_markdown`, `tuning_markdown` (with the tuning files), `markdown`
  (the report as text: `to_markdown`, `section_markdown`), `plots` (`plot_loss_curves`,
  `plot_final`, `plot_declared`), `write` (the files: `write_report`, `comparison_frame`,
  `runs_frame`, `declared_frame`, `gaps_frame`);
* on top, `build` (`analyse_sweeps`, then `write_sweep_report`): the one module that runs the
  analysis, then the presentation (scripts/compare.py is its command line).

Statistics (stated in the report too): per encoding the mean over seeds with a Student-t 95 %
interval; between two encodings a two-sided paired t-test on the per-seed differences, with
Holm–Bonferroni adjustment over all pairs of a table, which is exploratory where the runs declare a
study: the study's own few comparisons are the Holm family that can reach significance (see
`clay_exp.report.study`). Runs that failed, did not finish or whose
record cannot be read are listed, never averaged in.
"""

from clay_exp.report.bootstrap import GapEstimate, gap_closed, spearman_ci
from clay_exp.report.compare import LOSS_DESCRIPTION, Comparison, compare
from clay_exp.report.markdown import section_markdown, to_markdown
from clay_exp.report.metric import LOSS_METRICS, Metric
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
    per_seed,
    run_from_record,
    run_from_results,
)
from clay_exp.report.stats import Summary, holm, mean_ci, paired_t_test
from clay_exp.report.study import (
    DeclaredTest,
    StudyResult,
    analyse_studies,
    analyse_study,
    declared_tests,
    gaps,
    ranking_check,
)
from clay_exp.report.study_declaration import Declared, Study
from clay_exp.report.study_floors import FLOOR_CHIPS, attach_floors, floor_distances, study_floors
from clay_exp.report.study_markdown import study_markdown
from clay_exp.report.table import BASELINE, IGNORED_CONFIG, YARDSTICK, PairTest, Row, Section
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
    "per_seed",
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
