"""The head-to-head report of a sweep: which encoding wins, by how much, how sure, at what cost.

Shared by ``scripts/compare.py``, ``notebooks/compare_encodings.ipynb`` and any other producer of
per-encoding numbers (e.g. a location probe): build `Run` records (`load_runs` reads them from
``results.json`` files), `compare` them on a list of `Metric` s, then `write_report` writes
``comparison.md`` / ``comparison.csv`` / ``runs.csv`` and the plots.

Statistics (stated in the report too): per encoding the mean over seeds with a Student-t 95 %
interval; between two encodings a two-sided paired t-test on the per-seed differences, with
Holm–Bonferroni adjustment over all pairs of a table. Runs that failed or did not finish are listed,
never averaged in.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from scipy import stats

from clay_exp.results import find_result_files, read_results

#: Hydra writes this into every job folder at its start; one without results.json never reached train().
HYDRA_JOB_CONFIG = Path(".hydra") / "hydra.yaml"
METRICS_CSV = Path("csv") / "metrics.csv"
#: Encodings that anchor the "share of the location gap closed" column.
BASELINE, ORACLE = "none", "oracle"
#: Config entries that legitimately differ between the runs of one table (never reported as a confound).
IGNORED_CONFIG = (
    "seed",
    "paths",
    "logger",
    "callbacks",
    "ckpt_path",
    "resume",
    "torch_threads",
    "trainer.default_root_dir",
)


@dataclass(frozen=True)
class Metric:
    """A number compared across encodings: a key of each run's `metrics` and its direction."""

    key: str
    higher_is_better: bool = False

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


#: The MAE comparison: final val/loss, and the loss on held-out regions when a world logs it.
LOSS_METRICS = (Metric("val/loss"), Metric("val_heldout/loss"))


@dataclass
class Run:
    """One run as the report sees it (one job folder of a sweep, or one probe fit).

    `setting` holds what must be equal for runs to share a table (experiment, world), `variant`
    what may differ between rows of one table (e.g. the injection); `metrics` the final values.
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

    def usable(self, metric: Metric) -> bool:
        return self.status == "completed" and metric.key in self.metrics


@dataclass
class Summary:
    """Mean over seeds with a Student-t interval (nan where fewer than 2 runs)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    values: list[float]

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@dataclass
class PairTest:
    """Paired comparison of two rows on one metric; `diff` = worse − better per seed."""

    metric: Metric
    better: str
    worse: str
    n: int
    diff: Summary
    p: float
    p_holm: float = math.nan
    significant: bool = False


@dataclass
class Row:
    label: str
    encoding: str
    variant: dict[str, str]
    runs: list[Run]
    stats: dict[str, Summary] = field(default_factory=dict)
    gap_closed: dict[str, float] = field(default_factory=dict)

    def completed(self, metric: Metric) -> list[Run]:
        return [r for r in self.runs if r.usable(metric)]

    @property
    def params_encoding(self) -> int | None:
        return _first([r.params_encoding for r in self.runs])

    @property
    def params_encoding_trainable(self) -> int | None:
        return _first([r.params_encoding_trainable for r in self.runs])

    @property
    def step_time_s(self) -> float | None:
        times = [r.step_time_s for r in self.runs if r.status == "completed" and r.step_time_s]
        return float(np.mean(times)) if times else None


@dataclass
class Section:
    """One table: the runs of one setting (e.g. one experiment on one world)."""

    setting: dict[str, str]
    metrics: list[Metric]
    rows: list[Row]
    tests: list[PairTest]
    not_averaged: list[Run]
    notes: list[str]

    @property
    def title(self) -> str:
        return " · ".join(f"{k}={v}" for k, v in self.setting.items()) or "all runs"


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


# -- reading runs ---------------------------------------------------------------------------------
def run_from_results(path: Path, results: dict[str, Any]) -> Run:
    """A `Run` from one ``results.json`` (as clay_exp.train writes it)."""
    final = results.get("final") or {}
    params = results.get("params") or {}
    error = results.get("error") or {}
    return Run(
        path=path,
        encoding=str(results.get("encoding")),
        seed=results.get("seed"),
        status=str(results.get("status")),
        metrics={k: float(v) for k, v in final.items() if isinstance(v, int | float) and math.isfinite(v)},
        setting={"experiment": str(results.get("experiment")), "data": str(results.get("data"))},
        variant={"injection": str(results.get("injection"))},
        params_encoding=params.get("encoding"),
        params_encoding_trainable=params.get("encoding_trainable"),
        step_time_s=results.get("step_time_s"),
        error=f"{error.get('type')}: {error.get('message')}" if error else None,
        config=results.get("config") or {},
    )


def _run_without_results(job_dir: Path) -> Run:
    """A job folder Hydra made whose run never wrote results.json (it died before training started)."""
    config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(job_dir / HYDRA_JOB_CONFIG).hydra.runtime.choices
    return Run(
        path=job_dir,
        encoding=str(choices.get("encoding")),
        seed=config.get("seed"),
        status="missing",
        setting={"experiment": str(config.get("experiment_name")), "data": str(choices.get("data"))},
        variant={"injection": str(config.get("injection"))},
        error="no results.json: the job ended before training started (see its train.log)",
    )


def load_runs(*roots: str | Path) -> list[Run]:
    """Every run below `roots` (sweep folders, run folders or folders of them), failed ones included."""
    if not roots:
        raise ValueError("no folder given: pass one or more multirun (or run) folders")
    runs: list[Run] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise ValueError(f"{str(root)!r} is not a folder (expected a multirun folder under logs/)")
        found = {p.parent for p in find_result_files(root)}
        runs += [run_from_results(d, read_results(d)) for d in sorted(found)]
        runs += [
            _run_without_results(p.parent.parent)
            for p in sorted(root.rglob(str(HYDRA_JOB_CONFIG)))
            if p.parent.parent not in found
        ]
    if not runs:
        raise ValueError(f"no runs (results.json or Hydra job folders) below {[str(r) for r in roots]}")
    return runs


def latest_sweep(log_dir: str | Path = "logs", experiment: str = "compare_encodings") -> Path:
    """The newest multirun folder of `experiment` (folder names are dates, so they sort in time)."""
    sweeps = sorted(p for p in (Path(log_dir) / experiment / "multiruns").glob("*") if p.is_dir())
    if not sweeps:
        raise ValueError(f"no multirun of {experiment!r} under {str(log_dir)!r}: run train.py -m first")
    return sweeps[-1]


def metric_curve(run: Run, metric: str = "val/loss") -> pd.Series:
    """`metric` against the training step from the run's CSV log (empty if it logged none)."""
    path = run.path / METRICS_CSV
    if not path.is_file():
        return pd.Series(dtype=float)
    frame = pd.read_csv(path)
    if metric not in frame:
        return pd.Series(dtype=float)
    rows = frame.dropna(subset=[metric])
    return pd.Series(rows[metric].to_numpy(float), index=rows["step"].to_numpy(int), name=run.seed)


# -- statistics -----------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean with a Student-t `confidence` interval; the interval is nan for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return Summary(n, mean, std, mean - half, mean + half, [float(v) for v in x])


def paired_t_test(differences: Sequence[float]) -> float:
    """Two-sided p-value of a paired t-test that the mean per-seed difference is 0 (nan if n < 2)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.ptp(d) == 0:  # identical differences: no spread, certain unless they are all zero
        return 1.0 if d[0] == 0 else 0.0
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (nan stays nan and does not count as a test)."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (len(tested) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _per_seed(runs: Iterable[Run], metric: Metric) -> dict[int, float]:
    """Metric by seed (the mean if a seed ran twice)."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        if r.usable(metric) and r.seed is not None:
            by_seed.setdefault(r.seed, []).append(r.metrics[metric.key])
    return {s: float(np.mean(v)) for s, v in by_seed.items()}


# -- the comparison -------------------------------------------------------------------------------
def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _config_differences(runs: Sequence[Run], ignore: Sequence[str]) -> list[str]:
    """Config entries (outside `ignore`, and not simply equal to each run's seed) that differ."""
    configs = [r.config for r in runs if r.config]
    if len(configs) < 2:
        return []
    table = pd.json_normalize(configs, sep=".")  # one column per leaf
    seeds = table.get("seed", pd.Series([None] * len(table)))
    follows_seed = {c for c in table.columns if all(v == s for v, s in zip(table[c], seeds, strict=True))}
    return [
        key
        for key in table.columns
        if key not in follows_seed
        and not any(key == i or key.startswith(f"{i}.") for i in ignore)
        and table[key].map(repr).nunique() > 1
    ]


def _label(run: Run, varying: Sequence[str]) -> str:
    extra = ", ".join(f"{k}={run.variant.get(k)}" for k in varying)
    return f"{run.encoding} ({extra})" if extra else run.encoding


def _fill_gap_closed(rows: Sequence[Row], metrics: Sequence[Metric]) -> None:
    """Share of the none -> oracle gap each row closes, against anchors of the same variant."""
    for row in rows:
        anchors = {
            r.encoding: r for r in rows if r.variant == row.variant and r.encoding in (BASELINE, ORACLE)
        }
        if BASELINE not in anchors or ORACLE not in anchors:
            continue
        for m in metrics:
            base, oracle = anchors[BASELINE].stats.get(m.key), anchors[ORACLE].stats.get(m.key)
            own = row.stats.get(m.key)
            if base and oracle and own and base.mean != oracle.mean:
                row.gap_closed[m.key] = (base.mean - own.mean) / (base.mean - oracle.mean)


def _pair_tests(rows: Sequence[Row], metric: Metric, confidence: float, alpha: float) -> list[PairTest]:
    """Every pair of rows on `metric`, paired by seed; Holm over this family of tests."""
    family = []
    for a, b in itertools.combinations([r for r in rows if metric.key in r.stats], 2):
        if metric.better(b.stats[metric.key].mean, a.stats[metric.key].mean):
            a, b = b, a
        sa, sb = _per_seed(a.runs, metric), _per_seed(b.runs, metric)
        seeds = sorted(sa.keys() & sb.keys())
        diffs = [(sb[s] - sa[s]) * (-1 if metric.higher_is_better else 1) for s in seeds]
        family.append(
            PairTest(metric, a.label, b.label, len(seeds), mean_ci(diffs, confidence), paired_t_test(diffs))
        )
    for test, p_adjusted in zip(family, holm([t.p for t in family]), strict=True):
        test.p_holm, test.significant = p_adjusted, bool(p_adjusted < alpha)
    return family


def _notes(rows: Sequence[Row], primary: Metric, varying: Sequence[str]) -> list[str]:
    """Possible confounds among the averaged runs (a failed run's odd setting is in no mean)."""
    ignore = [*IGNORED_CONFIG, *varying]
    averaged = [r for row in rows for r in row.completed(primary)]
    differing = {k for row in rows for k in _config_differences(row.completed(primary), ignore)}
    differing |= set(_config_differences(averaged, [*ignore, "encoding", "encoding_name"]))
    notes = []
    if differing:
        names = ", ".join(f"`{k}`" for k in sorted(differing))
        notes.append(
            f"These settings differ between the runs of this table (beyond encoding and seed): {names}."
        )
    for row in rows:
        seeds = [r.seed for r in row.completed(primary) if r.seed is not None]
        doubled = sorted({s for s in seeds if seeds.count(s) > 1})
        if doubled:
            notes.append(f"`{row.label}` ran seed(s) {doubled} more than once: tests pair their mean.")
    return notes


def _compare_section(
    setting: dict[str, str], runs: list[Run], metrics: Sequence[Metric], confidence: float, alpha: float
) -> Section:
    primary = metrics[0]
    present = [m for m in metrics if m is primary or any(r.usable(m) for r in runs)]
    variant_keys = sorted({k for r in runs for k in r.variant})
    varying = [k for k in variant_keys if len({r.variant.get(k) for r in runs}) > 1]
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(_label(r, varying), []).append(r)
    rows = [Row(label, rs[0].encoding, rs[0].variant, rs) for label, rs in groups.items()]
    for row in rows:
        for m in present:
            if values := [r.metrics[m.key] for r in row.completed(m)]:
                row.stats[m.key] = mean_ci(values, confidence)

    def rank_key(row: Row) -> tuple[bool, float, str]:
        s = row.stats.get(primary.key)
        if s is None:
            return (True, math.inf, row.label)
        return (False, -s.mean if primary.higher_is_better else s.mean, row.label)

    rows.sort(key=rank_key)
    _fill_gap_closed(rows, present)
    tests = [t for m in present for t in _pair_tests(rows, m, confidence, alpha)]
    not_averaged = [r for r in runs if not r.usable(primary)]
    return Section(dict(setting), present, rows, tests, not_averaged, _notes(rows, primary, varying))


def compare(
    runs: Sequence[Run],
    metrics: Sequence[Metric] = LOSS_METRICS,
    confidence: float = 0.95,
    alpha: float = 0.05,
    sources: Sequence[str | Path] = (),
    title: str = "Encoding comparison",
    description: str = LOSS_DESCRIPTION,
) -> Comparison:
    """Rank encodings on `metrics` (the first decides the order; the others show where present)."""
    if not runs:
        raise ValueError("compare() needs at least one run")
    if not metrics:
        raise ValueError("compare() needs at least one Metric")
    if not 0 < confidence < 1 or not 0 < alpha < 1:
        raise ValueError(f"confidence={confidence!r} and alpha={alpha!r} must lie strictly between 0 and 1")
    settings: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    for r in runs:
        settings.setdefault(tuple(r.setting.items()), []).append(r)
    sections = [
        _compare_section(dict(key), group, metrics, confidence, alpha)
        for key, group in sorted(settings.items())
    ]
    return Comparison(sections, [Path(s) for s in sources], confidence, alpha, title, description)


# -- writing --------------------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _cell(stat: Summary | None, completed: int) -> str:
    if stat is None:
        return "—"
    n = "" if stat.n == completed else f" (n={stat.n})"
    if stat.n < 2:
        return f"{_fmt(stat.mean)} (1 run, no CI){n}"
    return f"{_fmt(stat.mean)} ± {_fmt(stat.half_width)}{n}"


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


def section_markdown(section: Section, confidence: float = 0.95, alpha: float = 0.05) -> str:
    """One table with its significance tests and the runs left out of it, as markdown."""
    primary = section.metrics[0]
    pct = f"{confidence:.0%}".replace("%", " %")
    gap_metrics = [m for m in section.metrics if any(m.key in r.gap_closed for r in section.rows)]
    has_params = any(r.params_encoding is not None for r in section.rows)
    has_time = any(r.step_time_s is not None for r in section.rows)
    header = ["rank", "encoding", "runs", *(f"{m.key} (mean ± {pct} CI)" for m in section.metrics)]
    header += [f"gap closed ({m.key})" for m in gap_metrics]
    header += ["encoding params"] * has_params + ["time / step"] * has_time
    lines = [f"## {section.title}", "", "| " + " | ".join(header) + " |"]
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
    if gap_metrics:
        lines.append(
            f"Gap closed = (L_{BASELINE} − L_encoding) / (L_{BASELINE} − L_{ORACLE}) on the means: 0 % is no "
            f"better than no location, 100 % as good as the oracle."
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
            ci = "—" if t.n < 2 else f"[{_fmt(t.diff.ci_low)}, {_fmt(t.diff.ci_high)}]"
            verdict = "**yes**" if t.significant else ("n/a (< 2 seeds)" if t.n < 2 else "no")
            lines.append(
                f"| {t.metric.key} | `{t.better}` | `{t.worse}` | {_fmt(t.diff.mean)} | {ci} | {t.n} | "
                f"{_fmt_p(t.p)} | {_fmt_p(t.p_holm)} | {verdict} |"
            )
        lines.append("")
    return lines


def _left_out_markdown(section: Section) -> list[str]:
    primary = section.metrics[0]
    lines: list[str] = []
    if section.not_averaged:
        lines += [
            "### Runs not in the averages",
            "",
            "| run | encoding | seed | status | why |",
            "|---|---|---:|---|---|",
        ]
        for r in section.not_averaged:
            why = r.error or (f"no final {primary.key}" if r.status == "completed" else "did not finish")
            why = why.splitlines()[0][:200].replace("|", "\\|")
            lines.append(f"| `{r.path.name}` | `{r.encoding}` | {r.seed} | {r.status} | {why} |")
        lines.append("")
    for note in section.notes:
        lines += [f"Note: {note}", ""]
    return lines


def to_markdown(comparison: Comparison) -> str:
    """The whole report: a heading, what the numbers are, then one `section_markdown` per setting."""
    parts = [f"# {comparison.title}"]
    if comparison.sources:
        n = sum(len(r.runs) for s in comparison.sections for r in s.rows)
        parts.append("From " + ", ".join(f"`{s}`" for s in comparison.sources) + f" ({n} runs).")
    parts.append(comparison.description)
    parts += [section_markdown(s, comparison.confidence, comparison.alpha) for s in comparison.sections]
    return "\n\n".join(parts)


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
            rec |= {
                "params_encoding": row.params_encoding,
                "params_encoding_trainable": row.params_encoding_trainable,
                "step_time_s": row.step_time_s,
            }
            records.append(rec)
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


# -- plots ----------------------------------------------------------------------------------------
def _colors(comparison: Comparison) -> dict[str, Any]:
    """One colour per encoding, the same in every panel and plot."""
    labels = sorted({row.label for s in comparison.sections for row in s.rows})
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _panels(comparison: Comparison, metrics_of: Any) -> list[tuple[Section, Metric]]:
    return [(s, m) for s in comparison.sections for m in metrics_of(s)]


def plot_loss_curves(comparison: Comparison) -> Figure:
    """Each loss metric against the training step: the mean over seeds per encoding, band = min–max."""
    panels = _panels(comparison, lambda s: [m for m in s.metrics if not m.higher_is_better])
    colors = _colors(comparison)
    fig = Figure(figsize=(7, 4.2 * max(1, len(panels))), layout="constrained")
    axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    for ax, (section, metric) in zip(axes, panels, strict=False):
        for row in section.rows:
            curves = [c for r in row.completed(metric) if not (c := metric_curve(r, metric.key)).empty]
            if not curves:
                continue
            table = pd.concat(curves, axis=1).sort_index()
            mean = table.mean(axis=1)
            ax.plot(
                mean.index, mean.to_numpy(), color=colors[row.label], label=f"{row.label} (n={len(curves)})"
            )
            if len(curves) > 1:
                ax.fill_between(
                    table.index, table.min(axis=1), table.max(axis=1), color=colors[row.label], alpha=0.2
                )
        ax.set_title(f"{metric.key} during training\n{section.title}")
        ax.set_xlabel("training step")
        ax.set_ylabel(metric.key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="encoding (mean over seeds; band: min–max)", fontsize="small")
    return fig


def _once(label: str, labelled: set[str]) -> str | None:
    """`label` the first time (one legend entry per kind of mark), None after."""
    if label in labelled:
        return None
    labelled.add(label)
    return label


def plot_final(comparison: Comparison, keys: Collection[str] | None = None) -> Figure:
    """Final value per encoding: mean with its confidence interval (bar) and every seed (dots).

    One panel per section and metric, or only the metrics named in `keys`.
    """
    panels = _panels(comparison, lambda s: [m for m in s.metrics if keys is None or m.key in keys])
    colors = _colors(comparison)
    pct = f"{comparison.confidence:.0%}".replace("%", " %")
    height = max(2.5, 0.5 * max((len(s.rows) for s in comparison.sections), default=1) + 1.5)
    fig = Figure(figsize=(7, height * max(1, len(panels))), layout="constrained")
    axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    for ax, (section, metric) in zip(axes, panels, strict=False):
        rows = [r for r in section.rows if metric.key in r.stats]
        labelled: set[str] = set()
        for y, row in enumerate(rows):
            s = row.stats[metric.key]
            color = colors[row.label]
            if s.n > 1:
                ax.errorbar(
                    s.mean,
                    y,
                    xerr=[[s.mean - s.ci_low], [s.ci_high - s.mean]],
                    fmt="o",
                    color=color,
                    capsize=4,
                    markersize=7,
                    label=_once(f"mean ± {pct} CI", labelled),
                )
            else:
                ax.plot(s.mean, y, "o", color=color, markersize=7)
            ax.plot(
                s.values, [y] * len(s.values), "x", color="0.3", alpha=0.7, label=_once("seeds", labelled)
            )
        ax.set_yticks(range(len(rows)), [r.label for r in rows])
        ax.invert_yaxis()  # best on top
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"Final {metric.key} per encoding ({better} is better)\n{section.title}")
        ax.set_xlabel(metric.key)
        ax.set_ylabel("encoding")
        ax.grid(axis="x", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    return fig


def write_report(
    comparison: Comparison,
    runs: Sequence[Run],
    out_dir: str | Path,
    curves: bool = True,
    plot_keys: Collection[str] | None = None,
) -> dict[str, Path]:
    """Write comparison.md/.csv, runs.csv, final_loss.png (the `plot_keys` metrics, default all) and
    (with `curves`) loss_curves.png."""
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
    return written


# -- command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description="Compare the encodings of one or more sweeps: comparison.md/.csv, runs.csv and plots.",
    )
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="multirun folders (e.g. logs/compare_encodings/multiruns/<date>)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the first folder)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise significance level of the tests"
    )
    args = parser.parse_args(argv)
    try:
        runs = load_runs(*args.dirs)
        comparison = compare(runs, LOSS_METRICS, args.confidence, args.alpha, sources=args.dirs)
    except ValueError as error:
        parser.error(str(error))
    written = write_report(comparison, runs, args.out or args.dirs[0])
    print(to_markdown(comparison))
    left_out = sum(len(s.not_averaged) for s in comparison.sections)
    if left_out:
        print(
            f"\n{left_out} run(s) failed or did not finish: listed in the report, not averaged.",
            file=sys.stderr,
        )
    print("\nWrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 0
