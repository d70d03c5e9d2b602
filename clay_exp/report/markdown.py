"""The report as markdown: one table per section, its significance tests, the runs left out.

`to_markdown` is ``comparison.md`` (also what scripts/compare.py prints and the notebook shows):
the declared studies first (`clay_exp.report.study_markdown`), then one table per section, headed
exploratory where its runs declare a study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from clay_exp.report.compare import Comparison
from clay_exp.report.format import fmt, fmt_p
from clay_exp.report.metric import Metric
from clay_exp.report.reliance_markdown import reliance_markdown
from clay_exp.report.runs import Run
from clay_exp.report.stats import Summary
from clay_exp.report.study_markdown import study_markdown
from clay_exp.report.table import Row, Section

#: The longest "why" a table cell shows (the full error is in runs.csv).
WHY_CHARS = 300


def _cell(stat: Summary | None, completed: int) -> str:
    if stat is None:
        return "—"
    n = "" if stat.n == completed else f" (n={stat.n})"
    if stat.n < 2:
        return f"{fmt(stat.mean)} (1 run, no CI){n}"
    return f"{fmt(stat.mean)} ± {fmt(stat.half_width)}{n}"


def _runs_cell(row: Row, primary: Metric) -> str:
    done = len(row.completed(primary))
    if done == len(row.runs):
        return str(done)
    others = [
        r.status if r.status != "completed" else f"no {primary.key}"
        for r in row.runs
        if not r.usable(primary)
    ]
    counts = ", ".join(f"{others.count(s)} {s}" for s in sorted(set(others)))
    return f"{done} of {len(row.runs)} ({counts})"


def _params_cell(row: Row) -> str:
    total, trainable = row.params_encoding, row.params_encoding_trainable
    if total is None:
        return "—"
    return f"{total:,}" if trainable in (None, total) else f"{total:,} ({trainable:,} trainable)"


#: The heading prefix of a table whose runs declare a study: its tests are not the declared ones.
EXPLORATORY = "Exploratory (not pre-registered)"


def section_markdown(
    section: Section, confidence: float = 0.95, alpha: float = 0.05, exploratory: bool = False
) -> str:
    """One table with its significance tests and the runs left out of it, as markdown.

    `exploratory`: the section's runs declare a study reported above it; the heading says so and the
    bare ratio-of-means gap column is left out (the study gives the gap with its interval).
    """
    primary = section.metrics[0]
    pct = f"{confidence:.0%}".replace("%", " %")
    gap_metrics = [
        m for m in section.metrics if not exploratory and any(m.key in r.gap_closed for r in section.rows)
    ]
    has_params = any(r.params_encoding is not None for r in section.rows)
    has_time = any(r.step_time_s is not None for r in section.rows)
    header = ["rank", "encoding", "runs", *(f"{m.key} (mean ± {pct} CI)" for m in section.metrics)]
    header += [f"gap closed ({m.key})" for m in gap_metrics]
    header += ["encoding params"] * has_params + ["time / step"] * has_time
    title = f"{EXPLORATORY}: {section.title}" if exploratory else section.title
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |"]
    lines.append(
        "|"
        + "|".join("---:" if h in ("rank", "encoding params", "time / step") else "---" for h in header)
        + "|"
    )
    for rank, row in enumerate(section.rows, 1):
        done = len(row.completed(primary))
        cells = [str(rank) if primary.key in row.stats else "—", f"`{row.label}`", _runs_cell(row, primary)]
        cells += [_cell(row.stats.get(m.key), done) for m in section.metrics]
        cells += [f"{row.gap_closed[m.key]:.0%}" if m.key in row.gap_closed else "—" for m in gap_metrics]
        if has_params:
            cells.append(_params_cell(row))
        if has_time:
            cells.append(f"{row.step_time_s * 1000:.0f} ms" if row.step_time_s else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    direction = ", ".join(
        f"{m.key}: {'higher' if m.higher_is_better else 'lower'} is better" for m in section.metrics
    )
    lines.append(f"Sorted by mean {primary.key}, best first ({direction}).")
    if exploratory:
        lines.append(
            "Every pair below is exploratory: the study's declared comparisons, with their own Holm "
            "family, and the gap closed with intervals are in the study section above."
        )
    if gap_metrics:
        lines.append(
            f"Gap closed = (L_{section.baseline} − L_encoding) / (L_{section.baseline} − "
            f"L_{section.yardstick}) on the means, within each variant: 0 % is no better than "
            f"`{section.baseline}`, 100 % as good as `{section.yardstick}`."
        )
    lines.append("")
    return "\n".join(lines + _tests_markdown(section, pct, alpha) + _left_out_markdown(section))


def _tests_markdown(section: Section, pct: str, alpha: float) -> list[str]:
    lines: list[str] = []
    if section.tests:
        lines += ["### Which differences are significant", ""]
        family_sizes = {
            m.key: sum(t.metric == m and math.isfinite(t.p) for t in section.tests) for m in section.metrics
        }
        lines.append(
            f"Two-sided paired t-test on the per-seed differences (runs matched by seed), one test per pair "
            f"of encodings and metric; p-values Holm–Bonferroni adjusted within each metric "
            f"({', '.join(f'{k}: {n} tests' for k, n in family_sizes.items())}), significant at "
            f"family-wise α = {alpha:g}. Δ = worse − better (mean over seeds, {pct} t-interval). With few "
            f"seeds only large, consistent differences can reach significance; not significant is not "
            f"evidence of no difference."
        )
        lines += ["", "| metric | better | worse | Δ | Δ CI | seeds | p | p (Holm) | significant |"]
        lines.append("|---|---|---|---:|---|---:|---:|---:|---|")
        for t in section.tests:
            ci = "—" if t.n < 2 else f"[{fmt(t.diff.ci_low)}, {fmt(t.diff.ci_high)}]"
            verdict = "**yes**" if t.significant else ("n/a (< 2 seeds)" if t.n < 2 else "no")
            lines.append(
                f"| {t.metric.key} | `{t.better}` | `{t.worse}` | {fmt(t.diff.mean)} | {ci} | {t.n} | "
                f"{fmt_p(t.p)} | {fmt_p(t.p_holm)} | {verdict} |"
            )
        lines.append("")
    return lines


def _left_out_table(heading: str, runs: Sequence[Run], primary: Metric | None) -> list[str]:
    """The runs in no mean, each with why: its error (one line), or what it lacks."""
    if not runs:
        return []
    lines = [heading, "", "| run | encoding | seed | status | why |", "|---|---|---:|---|---|"]
    for r in runs:
        lacks = f"no final {primary.key}" if primary and r.status == "completed" else "did not finish"
        why = (r.error or lacks).splitlines()[0]
        why = (why if len(why) <= WHY_CHARS else why[: WHY_CHARS - 1] + "…").replace("|", "\\|")
        seed = "—" if r.seed is None else r.seed
        lines.append(f"| `{r.path.name}` | `{r.encoding}` | {seed} | {r.status} | {why} |")
    return [*lines, ""]


def _left_out_markdown(section: Section) -> list[str]:
    lines = _left_out_table("### Runs not in the averages", section.not_averaged, section.metrics[0])
    for note in section.notes:
        lines += [f"Note: {note}", ""]
    return lines


def to_markdown(comparison: Comparison) -> str:
    """The whole report: a heading, what the numbers are, then one `section_markdown` per setting."""
    parts = [f"# {comparison.title}"]
    if comparison.sources:
        n = sum(len(r.runs) for s in comparison.sections for r in s.rows) + len(comparison.unreadable)
        parts.append("From " + ", ".join(f"`{s}`" for s in comparison.sources) + f" ({n} runs).")
    parts.append(comparison.description)
    if comparison.studies:  # the declared studies first, their tables below as exploratory
        parts += [study_markdown(r, comparison.confidence) for r in comparison.studies]
    studied = {id(r.section) for r in comparison.studies}
    parts += [
        section_markdown(s, comparison.confidence, comparison.alpha, exploratory=id(s) in studied)
        for s in comparison.sections
    ]
    if comparison.reliance:  # per arm: reliance, robustness, prior, probe (clay_exp.report.reliance)
        parts += [reliance_markdown(t, comparison.confidence) for t in comparison.reliance]
    if comparison.unreadable:
        heading = "## Runs that could not be read (in no table)"
        parts.append("\n".join(_left_out_table(heading, comparison.unreadable, None)))
    return "\n\n".join(parts)
