"""A pre-registered study as markdown: question, budget, declared comparisons, gaps, ranking, floors.

`study_markdown` renders one `StudyResult`; `clay_exp.report.markdown.to_markdown` puts the studies
before the (then exploratory) per-encoding tables.
"""

from __future__ import annotations

import math

from clay_exp.design.floors import estimators
from clay_exp.report.format import fmt, fmt_p
from clay_exp.report.study import TARGET_POWER, Budget, RankingCheck, StudyResult
from clay_exp.report.study_declaration import MEASURES
from clay_exp.report.study_floors import floor_distances


def _span(span: tuple[int, int] | None) -> str:
    if span is None:
        return "?"
    return f"{span[0]:,}" if span[0] == span[1] else f"{span[0]:,}–{span[1]:,}"


def _budget_line(budget: Budget | None) -> str:
    if budget is None or budget.steps is None:
        return "budget unknown (the records hold no step count)"
    text = f"{_span(budget.steps)} optimizer steps"
    if budget.batch_size is not None:
        text += f" of {budget.batch_size} chips"
    if budget.chips is not None:
        text += f" = {_span(budget.chips)} training chips seen per run"
    if budget.train_size:
        text += f" ({budget.train_size:,} chips per epoch)"
    return text


def _ci(lo: float, hi: float) -> str:
    return "—" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{fmt(lo)}, {fmt(hi)}]"


def _declared(result: StudyResult, pct: str) -> list[str]:
    study = result.study
    assert study is not None
    k = len(study.comparisons)
    lines = [
        f"### Declared comparisons (pre-registered: Holm over these {k})",
        "",
        f"| # | a | b | metric | expected | seeds | Δ = a − b | {pct} CI | p | p (Holm, k={k}) | MDD "
        "| direction holds | verdict |",
        "|---:|---|---|---|---|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for i, t in enumerate(result.declared, 1):
        c = t.comparison
        holds = "—" if not math.isfinite(t.diff.mean) else ("yes" if t.holds else "no")
        lines.append(
            f"| {i} | `{c.a}` | `{c.b}` | {c.metric} | {c.expect} | {t.n} | {fmt(t.diff.mean)} | "
            f"{_ci(t.diff.ci_low, t.diff.ci_high)} | {fmt_p(t.p)} | {fmt_p(t.p_holm)} | {fmt(t.mdd)} | "
            f"{holds} | {t.verdict} |"
        )
    lines += [
        "",
        f"Δ: mean over paired seeds of L_a − L_b (lower loss is better, so `a<b` expects Δ < 0), {pct} "
        f"Student-t interval; p: two-sided paired t-test; Holm–Bonferroni over the {k} declared "
        f"comparisons only (an untested one keeps its place with p = 1), confirmed at family-wise "
        f"α = {study.alpha:g} (the study's). MDD: the smallest true |Δ| detected with power "
        f"{TARGET_POWER:g} at these seeds, the observed sd of the differences and level α/{k} (Holm's "
        "worst case; `clay_exp.design.power`). Not significant with |Δ| < MDD: the design could not "
        "have seen it.",
        "",
    ]
    return lines


def _gaps(result: StudyResult, pct: str) -> list[str]:
    if not result.gaps:
        return []
    first = result.gaps[0]
    lines = [
        f"### Share of the gap closed ({pct} paired-bootstrap CI)",
        "",
        f"| arm | metric | towards | seeds | gap closed | {pct} CI (bootstrap) | {pct} CI (delta method) |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for g in result.gaps:
        e = g.estimate
        if e.n < 2:
            cells = [fmt(e.gap, 2) if math.isfinite(e.gap) else "—", "n/a (< 2 paired seeds)", "—"]
        elif not e.established:
            den = e.denominator
            cells = [
                "gap not established",
                f"L_{g.baseline} − L_{g.yardstick} = {fmt(den.mean)} {_ci(den.ci_low, den.ci_high)}",
                "—",
            ]
        else:
            cells = [f"{e.gap:.0%}", _pct_ci(e.ci_low, e.ci_high), _pct_ci(e.delta_low, e.delta_high)]
        lines.append(f"| `{g.arm}` | {g.metric} | `{g.yardstick}` | {e.n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Gap closed = (L_{first.baseline} − L_arm) / (L_{first.baseline} − L_yardstick), a ratio of means "
        "over the seeds the three arms share: 0 % no better than the baseline, 100 % as good as the "
        "yardstick. Interval: paired bootstrap over seeds (whole seeds resampled with replacement, the "
        f"ratio of means recomputed; {result.resamples:,} resamples, fixed RNG seed; percentile "
        "interval). The delta-method interval (t quantile) is shown beside it: with few seeds the "
        "bootstrap has few distinct resamples and is too narrow (simulated coverage of its 95 % "
        "interval: ~76 % at 3 seeds, ~92 % at 10; the delta method's ~94 %). Gap not established: "
        "the Student-t or the bootstrap interval of the denominator contains 0, so the ratio is "
        "meaningless.",
        "",
    ]
    return lines


def _pct_ci(lo: float, hi: float) -> str:
    return "—" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.0%}, {hi:.0%}]"


def _ranking(check: RankingCheck, pct: str) -> list[str]:
    order = " < ".join(f"`{a}`" for a in check.predicted)
    seen = " < ".join(f"`{a}`" for a in check.observed)
    lines = [
        f"**{check.metric}**: Spearman ρ = {fmt(check.rho, 2)} {_ci_2(check.ci_low, check.ci_high)} over "
        f"{len(check.predicted)} arms and {check.n} seeds common to all.",
        "",
        f"- predicted (lowest loss first): {order}",
        f"- observed: {seen}",
    ]
    if check.unpredicted:
        lines.append(f"- ran but not in the prediction: {', '.join(f'`{a}`' for a in check.unpredicted)}")
    lines.append("")
    if check.failed:
        lines += [
            f"Failed predictions ({len(check.failed)}): pairs predicted in this order whose observed means "
            f"are reversed; Δ = L_predicted-better − L_predicted-worse (> 0: reversed), {pct} Student-t "
            "interval, unadjusted (exploratory).",
            "",
            f"| predicted better | predicted worse | Δ | {pct} CI | reversal excludes 0 |",
            "|---|---|---:|---|---|",
        ]
        for f in check.failed:
            sure = math.isfinite(f.diff.ci_low) and f.diff.ci_low > 0
            ci = _ci(f.diff.ci_low, f.diff.ci_high)
            lines.append(
                f"| `{f.better}` | `{f.worse}` | {fmt(f.diff.mean)} | {ci} | {'yes' if sure else 'no'} |"
            )
    else:
        lines.append("No failed prediction: every predicted pair is in the predicted order.")
    return [*lines, ""]


def _ci_2(lo: float, hi: float) -> str:
    return "(no CI)" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.2f}, {hi:.2f}]"


def _floors(result: StudyResult) -> list[str]:
    lines = ["### Information floors", ""]
    if result.floors_note:
        lines += [f"{result.floors_note}.", ""]
    report = result.floors
    if report is None:
        return lines
    units = "norm-pix" if report.norm_pix_loss else "raw"
    lines += [
        f"{report.world}, chips {report.chip_shape}, patch {report.patch_size}, mask ratio "
        f"{report.mask_ratio}: the ideal predictor's masked-patch loss ({units}, the model's loss) "
        f"knowing nothing but the visible patches (`none`), some levels, or the true location "
        f"(`location`). Estimator: {estimators(report)}; ± one Monte-Carlo standard error.",
        "",
        f"| floor | known levels | loss ({units}) | raw MSE (closed form) |",
        "|---|---|---:|---:|",
    ]
    for f in report.floors:
        known = "—" if f.known_levels is None else ",".join(f"z{z}" for z in f.known_levels) or "∅"
        closed = "—" if f.raw_closed is None else fmt(f.raw_closed)
        lines.append(f"| {f.name} | {known} | {fmt(f.loss_mc)} ± {fmt(f.loss_mc_se)} | {closed} |")
    distances = floor_distances(result)
    if distances:
        names = list(distances[0].distance)
        lines += [
            "",
            "Distance of the budget to the floors: learned (mean over seeds) − floor. A `none` arm far "
            "above the `none` floor has not converged: differences between arms then measure learning "
            "speed, not information.",
            "",
            "| arm | metric | learned | " + " | ".join(f"− {n} floor" for n in names) + " |",
            "|---|---|---:|" + "---:|" * len(names),
        ]
        for d in distances:
            cells = " | ".join(fmt(d.distance[n]) for n in names)
            lines.append(f"| `{d.arm}` | {d.metric} | {fmt(d.learned)} | {cells} |")
    return [*lines, ""]


def study_markdown(result: StudyResult, confidence: float = 0.95) -> str:
    """One study: what it asks and measures, the declared family, gaps, ranking check, floors."""
    pct = f"{confidence:.0%}".replace("%", " %")
    lines = [f"## {result.title}", ""]
    if result.error or result.study is None:
        return "\n".join([*lines, f"Not analysed: {result.error}.", ""])
    study = result.study
    arms = [row.encoding for row in result.section.rows]
    lines += [
        f"**Question.** {study.question or '(not stated)'}",
        "",
        f"**Measures:** `{study.measures}`: {MEASURES[study.measures]}. "
        f"Budget: {_budget_line(result.budget)}.",
        "",
        f"**Arms:** {', '.join(f'`{a}`' for a in dict.fromkeys(arms))}. Baseline: `{study.baseline}`; "
        f"yardsticks: {', '.join(f'`{y}`' for y in study.yardsticks) or '—'}.",
        "",
    ]
    lines += _declared(result, pct) + _gaps(result, pct)
    if result.rankings:
        lines += ["### Predicted vs observed ranking", ""]
        lines.append(
            "Spearman's ρ between the predicted order and the observed order of mean losses over the arms "
            "that ran (1: as predicted, −1: reversed), with a paired-bootstrap interval over seeds "
            f"({result.resamples:,} resamples, {pct} percentile)."
        )
        lines.append("")
        for check in result.rankings:
            lines += _ranking(check, pct)
    if result.floors is not None or result.floors_note:
        lines += _floors(result)
    for note in result.notes:
        lines += [f"Note: {note}", ""]
    return "\n".join(lines)
