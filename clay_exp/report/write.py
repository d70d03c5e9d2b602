"""The report's files: ``comparison.md``/``.csv``, ``runs.csv`` and the plots, and the frames behind
the CSV files (one row per encoding, one row per run); where the runs declare a study also
``declared.csv`` (one row per declared comparison), ``gaps.csv`` (gap closed with its intervals) and
``declared.png``."""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clay_exp.report.compare import Comparison
from clay_exp.report.markdown import to_markdown
from clay_exp.report.plots import plot_declared, plot_final, plot_loss_curves
from clay_exp.report.reliance import reliance_columns
from clay_exp.report.runs import Run


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per encoding (and setting): the numbers of the table, unrounded."""
    records = []
    for section in comparison.sections:
        primary = section.metrics[0]
        for rank, row in enumerate(section.rows, 1):
            rec: dict[str, Any] = {**section.setting, "rank": rank if primary.key in row.stats else None}
            rec |= {"label": row.label, "encoding": row.encoding, **row.variant}
            rec |= {"runs": len(row.runs), "runs_completed": len(row.completed(primary))}
            for m in section.metrics:
                s = row.stats.get(m.key)
                rec |= {
                    f"{m.key} mean": s.mean if s else None,
                    f"{m.key} std": s.std if s else None,
                    f"{m.key} ci_low": s.ci_low if s else None,
                    f"{m.key} ci_high": s.ci_high if s else None,
                    f"{m.key} n": s.n if s else 0,
                }
                if m.key in row.gap_closed:
                    rec[f"{m.key} gap_closed"] = row.gap_closed[m.key]
            rec |= reliance_columns(comparison.reliance, section, row)
            rec |= {
                "params_encoding": row.params_encoding,
                "params_encoding_trainable": row.params_encoding_trainable,
                "step_time_s": row.step_time_s,
            }
            records.append(rec)
    return pd.DataFrame.from_records(records)


def declared_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per declared comparison of every study: the numbers of its table, unrounded."""
    records = []
    for result in comparison.studies:
        name = result.study.name if result.study else None
        for t in result.declared:
            c = t.comparison
            records.append(
                {
                    "study": name,
                    **result.section.setting,
                    "a": c.a,
                    "b": c.b,
                    "metric": c.metric,
                    "expect": c.expect,
                    "n": t.n,
                    "diff_mean": t.diff.mean,
                    "diff_sd": t.diff.std,
                    "diff_ci_low": t.diff.ci_low,
                    "diff_ci_high": t.diff.ci_high,
                    "p": t.p,
                    "p_holm": t.p_holm,
                    "alpha": t.alpha,
                    "mdd": t.mdd,
                    "holds": t.holds,
                    "significant": t.significant,
                    "missing": t.missing,
                }
            )
    return pd.DataFrame.from_records(records)


def gaps_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per study, arm, metric and yardstick: the gap closed and its intervals."""
    records = []
    for result in comparison.studies:
        name = result.study.name if result.study else None
        for g in result.gaps:
            e = g.estimate
            records.append(
                {
                    "study": name,
                    **result.section.setting,
                    "arm": g.arm,
                    "metric": g.metric,
                    "baseline": g.baseline,
                    "yardstick": g.yardstick,
                    "n": e.n,
                    "gap_closed": e.gap,
                    "boot_ci_low": e.ci_low,
                    "boot_ci_high": e.ci_high,
                    "delta_ci_low": e.delta_low,
                    "delta_ci_high": e.delta_high,
                    "denominator_mean": e.denominator.mean,
                    "denominator_ci_low": e.denominator.ci_low,
                    "denominator_ci_high": e.denominator.ci_high,
                    "gap_established": e.established,
                }
            )
    return pd.DataFrame.from_records(records)


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, failed ones included: the raw material of the table."""
    keys = sorted({k for r in runs for k in r.metrics})
    return pd.DataFrame.from_records(
        {
            "run": str(r.path),
            **r.setting,
            "encoding": r.encoding,
            **r.variant,
            "seed": r.seed,
            "status": r.status,
            **{k: r.metrics.get(k) for k in keys},
            "params_encoding": r.params_encoding,
            "step_time_s": r.step_time_s,
            "error": r.error,
        }
        for r in runs
    )


def write_report(
    comparison: Comparison,
    runs: Sequence[Run],
    out_dir: str | Path,
    curves: bool = True,
    plot_keys: Collection[str] | None = None,
) -> dict[str, Path]:
    """Write comparison.md/.csv, runs.csv, final_loss.png (the `plot_keys` metrics, default all),
    (with `curves`) loss_curves.png and, where the runs declare a study, declared.csv, gaps.csv and
    declared.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "comparison.md": out / "comparison.md",
        "comparison.csv": out / "comparison.csv",
        "runs.csv": out / "runs.csv",
        "final_loss.png": out / "final_loss.png",
    }
    written["comparison.md"].write_text(to_markdown(comparison) + "\n")
    comparison_frame(comparison).to_csv(written["comparison.csv"], index=False, quoting=csv.QUOTE_MINIMAL)
    runs_frame(runs).to_csv(written["runs.csv"], index=False)
    plot_final(comparison, plot_keys).savefig(written["final_loss.png"], dpi=110)
    if curves:
        written["loss_curves.png"] = out / "loss_curves.png"
        plot_loss_curves(comparison).savefig(written["loss_curves.png"], dpi=110)
    if comparison.studies:
        written["declared.csv"] = out / "declared.csv"
        declared_frame(comparison).to_csv(written["declared.csv"], index=False)
        written["gaps.csv"] = out / "gaps.csv"
        gaps_frame(comparison).to_csv(written["gaps.csv"], index=False)
        if (figure := plot_declared(comparison)) is not None:
            written["declared.png"] = out / "declared.png"
            figure.savefig(written["declared.png"], dpi=110)
    return written
