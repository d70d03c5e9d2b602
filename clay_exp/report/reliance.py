"""Beyond the loss, per arm: how much it leans on its location, what it loses without one, what the
location alone predicts, and (where the embedding probe ran) what its image features know.

The runs' own measures (`clay_exp.reliance`, `clay_exp.probe.embeddings`) become, per row of a
section and per validation set ``<set>``:

* **reliance** = ``<set>/loss_shuffled`` − ``<set>/loss`` (logged per run as ``<set>/reliance``):
  what a wrong place (another chip's) costs; > 0: the model reads its location;
* **robustness** = ``<set>/loss_missing`` − the baseline arm's ``<set>/loss`` (``none``, which never had
  a location), paired by seed: > 0: without its location the model does worse than one that never
  had any;
* **prior** = ``<set>/loss_prior`` (100 % masking, location given) and **prior − baseline** (paired):
  < 0: the location alone predicts part of the chip;
* **probe** metrics (``<set>/probe_*``, higher is better) and each one − the baseline's (paired).

Each cell is a mean over seeds with a Student-t interval (`clay_exp.report.stats.mean_ci`); a paired
cell's values are per-seed differences against the baseline row of the same variant (seeds pair
runs, as everywhere in the report). Measures no run logged are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clay_exp.report.metric import Metric
from clay_exp.report.runs import Run, per_seed
from clay_exp.report.stats import Summary, mean_ci
from clay_exp.report.table import Row, Section

#: The file the embedding probe writes into each run folder (`clay_exp.probe.embeddings`).
PROBE_FILE = "embedding_probe.json"
#: The groups of measures, in the order the report shows them.
GROUPS = ("reliance", "prior", "probe")


@dataclass(frozen=True)
class Measure:
    """A column: `metric` of each run, minus (paired by seed) the baseline row's `versus` if set."""

    key: str
    group: str
    metric: str
    versus: str | None = None
    higher_is_better: bool = False

    @property
    def paired(self) -> bool:
        return self.versus is not None


def loss_measures(sets: Sequence[str]) -> list[Measure]:
    """Reliance, robustness, prior and prior − baseline of each set."""
    out = []
    for s in sets:
        out += [
            Measure(f"{s}/reliance", "reliance", f"{s}/reliance"),
            Measure(f"{s}/robustness", "reliance", f"{s}/loss_missing", versus=f"{s}/loss"),
            Measure(f"{s}/prior", "prior", f"{s}/loss_prior"),
            Measure(f"{s}/prior_vs_baseline", "prior", f"{s}/loss_prior", versus=f"{s}/loss_prior"),
        ]
    return out


def probe_measures(metrics: Sequence[str]) -> list[Measure]:
    """Each probe metric and its difference to the baseline's (higher is better)."""
    out = []
    for m in metrics:
        out += [
            Measure(m, "probe", m, higher_is_better=True),
            Measure(f"{m}_vs_baseline", "probe", m, versus=m, higher_is_better=True),
        ]
    return out


@dataclass
class RelianceTable:
    """The measures of one section's rows: ``cells[row label][measure key]``."""

    section: Section
    baseline: str
    measures: list[Measure]
    cells: dict[str, dict[str, Summary]] = field(default_factory=dict)
    #: Rows without a baseline row of their variant (their paired cells are empty).
    unpaired: list[str] = field(default_factory=list)

    def group(self, name: str) -> list[Measure]:
        return [m for m in self.measures if m.group == name and any(m.key in c for c in self.cells.values())]


def _sets(runs: Sequence[Run]) -> list[str]:
    keys = {k for r in runs for k in r.metrics}
    return [s for s in dict.fromkeys(k.split("/", 1)[0] for k in sorted(keys)) if f"{s}/reliance" in keys]


def probe_metrics(runs: Sequence[Run]) -> list[str]:
    """The embedding probe's metrics: ``val`` first, then by label, withheld before given."""

    def order(key: str) -> tuple[bool, str, str, bool]:
        name, rest = key.split("/", 1)
        return (name != "val", name, rest.rsplit("_", 1)[0], not rest.endswith("_withheld"))

    return sorted({k for r in runs for k in r.metrics if k.split("/", 1)[-1].startswith("probe_")}, key=order)


def _baseline_row(rows: Sequence[Row], row: Row, baseline: str) -> Row | None:
    return next((r for r in rows if r.encoding == baseline and r.variant == row.variant), None)


def reliance_table(section: Section, baseline: str, confidence: float = 0.95) -> RelianceTable | None:
    """The measures of a section (None when no run logged any)."""
    runs = [r for row in section.rows for r in row.runs]
    sets = sorted(_sets(runs), key=lambda s: (s != "val", s))
    measures = loss_measures(sets) + probe_measures(probe_metrics(runs))
    if not measures:
        return None
    table = RelianceTable(section, baseline, measures)
    for row in section.rows:
        base = _baseline_row(section.rows, row, baseline)
        if base is None:
            table.unpaired.append(row.label)
        cells = {}
        for m in measures:
            own = per_seed(row.runs, Metric(m.metric))
            if m.versus is not None:
                if base is None:
                    continue
                other = per_seed(base.runs, Metric(m.versus))
                values = [own[s] - other[s] for s in sorted(own.keys() & other.keys())]
            else:
                values = list(own.values())
            if values:
                cells[m.key] = mean_ci(values, confidence)
        table.cells[row.label] = cells
    return table


def reliance_tables(
    sections: Sequence[Section], baseline: str, confidence: float = 0.95
) -> list[RelianceTable]:
    """One table per section whose runs logged reliance or probe metrics."""
    return [t for s in sections if (t := reliance_table(s, baseline, confidence)) is not None]


def reliance_columns(
    tables: Sequence[RelianceTable], section: Section, row: Row
) -> dict[str, float | int | None]:
    """The CSV columns of one row of comparison.csv: ``<measure> mean/ci_low/ci_high/n``."""
    table = next((t for t in tables if t.section is section), None)
    if table is None:
        return {}
    cells = table.cells.get(row.label, {})
    out: dict[str, float | int | None] = {}
    for m in table.measures:
        s = cells.get(m.key)
        if s is None and not any(m.key in c for c in table.cells.values()):
            continue
        out |= {
            f"{m.key} mean": s.mean if s else None,
            f"{m.key} ci_low": s.ci_low if s else None,
            f"{m.key} ci_high": s.ci_high if s else None,
            f"{m.key} n": s.n if s else 0,
        }
    return out


def attach_probe_metrics(runs: Sequence[Run], filename: str = PROBE_FILE) -> list[str]:
    """Merge the embedding probe's metrics of each run (``<run>/embedding_probe.json``, written by
    ``scripts/probe_embeddings.py``) into ``Run.metrics``. Returns one line per file that could not be
    read (its run keeps its other metrics; the probe's cells stay empty)."""
    problems = []
    for run in runs:
        path = Path(run.path) / filename
        if not path.is_file():
            continue
        try:
            metrics = json.loads(path.read_text())["metrics"]
            run.metrics |= {
                str(k): float(v)
                for k, v in metrics.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            problems.append(f"{path}: {type(error).__name__}: {error}")
    return problems
