"""The location-reliance tables as markdown (`clay_exp.report.reliance`): reliance and robustness,
the location prior, the embedding probe; one table each, per section, mean ± interval per arm."""

from __future__ import annotations

from clay_exp.report.format import fmt
from clay_exp.report.reliance import Measure, RelianceTable
from clay_exp.report.stats import Summary

#: Injections whose location acts on patch tokens only: no location reaches the decoder at 100 %.
PATCH_ONLY_INJECTIONS = ("add", "film")


def _cell(s: Summary | None) -> str:
    if s is None:
        return "—"
    if s.n < 2:
        return f"{fmt(s.mean)} (1 run)"
    return f"{fmt(s.mean)} ± {fmt(s.half_width)} (n={s.n})"


def _heading(m: Measure, baseline: str) -> str:
    name = m.key.replace("_vs_baseline", f" − {baseline}")
    if m.group == "reliance" and m.key.endswith("/robustness"):
        name = m.key.replace("robustness", f"robustness (missing − {baseline})")
    return name


def _table(table: RelianceTable, measures: list[Measure]) -> list[str]:
    header = ["encoding", *(_heading(m, table.baseline) for m in measures)]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(measures) + "|"]
    for row in table.section.rows:
        cells = table.cells.get(row.label, {})
        lines.append(f"| `{row.label}` | " + " | ".join(_cell(cells.get(m.key)) for m in measures) + " |")
    return [*lines, ""]


def _group(table: RelianceTable, group: str, heading: str, text: str) -> list[str]:
    """One group's table under its heading, with what its numbers are (nothing if no run logged it)."""
    measures = table.group(group)
    return [f"### {heading}", "", *_table(table, measures), text, ""] if measures else []


def reliance_markdown(table: RelianceTable, confidence: float = 0.95) -> str:
    """One section's reliance, prior and probe tables, with what each number is."""
    pct = f"{confidence:.0%}".replace("%", " %")
    base = table.baseline
    lines = [
        f"## Beyond the loss: {table.section.title}",
        "",
        f"Mean ± {pct} Student-t interval over seeds (n seeds). Differences to `{base}` are paired by "
        f"seed against the `{base}` row of the same variant. See docs/reliance.md.",
        "",
    ]
    lines += _group(
        table,
        "reliance",
        "Reliance on location and robustness to its absence",
        "reliance = L(shuffled) − L(given): the loss when each chip gets another chip's place from the "
        "same set, minus the loss with its own (> 0: the model reads its location; a lookup shortcut "
        f"shows as a large value). robustness = L(missing) − L(`{base}`): the loss with the location "
        f"withheld (the injection's `missing` path), minus the loss of `{base}`, which never had one "
        "(> 0: without its location the model is worse than never having had one).",
    )
    prior = _group(
        table,
        "prior",
        "What the location alone predicts (100 % masking)",
        "prior = the loss with no visible patch and the location given: the decoder has the mask tokens, "
        f"the positions and the location. prior − `{base}` < 0: the location alone predicts part of the "
        f"chip (`{base}` can only predict the mean).",
    )
    injections = {r.variant.get("injection") for r in table.section.rows}
    if prior and (patch_only := sorted(i for i in injections if i in PATCH_ONLY_INJECTIONS)):
        prior += [
            f"Note: under injection={', '.join(patch_only)} the location acts on patch tokens only; with "
            "no visible patch it cannot reach the prediction, so the prior is the no-location prior by "
            "construction (`token` and `clay_v1` carry the location to the decoder).",
            "",
        ]
    lines += prior
    probe = table.group("probe")
    for set_name in dict.fromkeys(m.key.split("/", 1)[0] for m in probe):  # one table per set: narrower
        measures = [m for m in probe if m.key.startswith(f"{set_name}/")]
        lines += [f"### Embedding probe on {set_name} (frozen encoder, linear probe; higher is better)", ""]
        lines += _table(table, measures)
    if probe:
        lines += [
            "`<set>/probe_<label>_<score>_<withheld|given>`: a closed-form linear probe on the frozen "
            "encoder's mean-pooled tokens of training chips, scored on the set (`acc`: accuracy, `r2`: "
            "R²), with the location withheld (the missing path) or given (scripts/probe_embeddings.py, "
            f"docs/probe.md). − `{base}` > 0: the arm's image features know more than `{base}`'s.",
            "",
        ]
    if table.unpaired:
        names = ", ".join(f"`{r}`" for r in table.unpaired)
        lines += [f"Note: no `{base}` row of the same variant for {names}: their paired cells are empty.", ""]
    return "\n".join(lines)
