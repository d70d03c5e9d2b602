"""`compare`: a sweep's runs analysed into one `Comparison`, the report's analysis from end to end.

It puts the runs into sections (`clay_exp.report.table`: one table per setting, a row per encoding),
then analyses each section's declared study (`clay_exp.report.study`) and its reliance measures
(`clay_exp.report.reliance`). Everything that presents a comparison (markdown, plots, files) reads
the `Comparison` and computes nothing of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clay_exp.report.metric import LOSS_METRICS, Metric
from clay_exp.report.reliance import RelianceTable, reliance_tables
from clay_exp.report.runs import UNREADABLE, Run
from clay_exp.report.study import StudyResult, analyse_studies
from clay_exp.report.table import BASELINE, YARDSTICK, Section, compare_section

#: What the numbers of an MAE sweep are (a probe or another producer passes its own description).
LOSS_DESCRIPTION = (
    "Each value is the mean over seeds of the final weights' score on the fixed validation set "
    "(val/loss: masked-patch reconstruction MSE of the MAE; val_heldout/loss: the same on regions "
    "held out of training, where the world has them). Time / step: training time divided by optimizer "
    "steps (validation included), on the machine that ran the job."
)


@dataclass
class Comparison:
    sections: list[Section]
    sources: list[Path]
    confidence: float
    alpha: float
    title: str = "Encoding comparison"
    description: str = LOSS_DESCRIPTION
    #: Runs whose record could not be read and whose setting is unknown (no Hydra files beside it):
    #: in no section, listed on their own.
    unreadable: list[Run] = field(default_factory=list)
    #: The pre-registered studies the runs declare (`clay_exp.report.study`), reported first.
    studies: list[StudyResult] = field(default_factory=list)
    #: Reliance, robustness, prior and probe per arm, where the runs logged them (`clay_exp.report.reliance`).
    reliance: list[RelianceTable] = field(default_factory=list)


def compare(
    runs: Sequence[Run],
    metrics: Sequence[Metric] = LOSS_METRICS,
    confidence: float = 0.95,
    alpha: float = 0.05,
    sources: Sequence[str | Path] = (),
    title: str = "Encoding comparison",
    description: str = LOSS_DESCRIPTION,
    baseline: str = BASELINE,
    yardstick: str = YARDSTICK,
    resamples: int = 2000,
) -> Comparison:
    """Rank encodings on `metrics` (the first decides the order; the others show where present).

    Runs of different `Run.setting` go to different sections, runs of different `Run.variant` (e.g.
    the injection) to different rows. Where a section has a `baseline` and a `yardstick` row of the
    same variant, each row gets the share of the gap between them it closes,
    (L_baseline − L_row) / (L_baseline − L_yardstick): 0 as good as the baseline, 1 as the yardstick.
    Sections whose runs carry a ``study`` node also get its analysis (`Comparison.studies`; the
    bootstraps draw `resamples` resamples).
    """
    if not runs:
        raise ValueError("compare() needs at least one run")
    if not metrics:
        raise ValueError("compare() needs at least one Metric")
    if not 0 < confidence < 1 or not 0 < alpha < 1:
        raise ValueError(f"confidence={confidence!r} and alpha={alpha!r} must lie strictly between 0 and 1")
    if baseline == yardstick:
        raise ValueError(f"baseline and yardstick are both {baseline!r}: the gap between them is empty")
    settings: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    unplaced = []
    for r in runs:
        if r.status == UNREADABLE and not r.setting:
            unplaced.append(r)
        else:
            settings.setdefault(tuple(r.setting.items()), []).append(r)
    sections = [
        compare_section(dict(key), group, metrics, confidence, alpha, (baseline, yardstick))
        for key, group in sorted(settings.items())
    ]
    studies = analyse_studies(sections, confidence, resamples)
    reliance = reliance_tables(sections, baseline, confidence)
    return Comparison(
        sections,
        [Path(s) for s in sources],
        confidence,
        alpha,
        title,
        description,
        unplaced,
        studies,
        reliance,
    )
