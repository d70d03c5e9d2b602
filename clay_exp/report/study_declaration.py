"""A pre-registered study's declaration: the ``study`` node of a study experiment's config, parsed
and checked (`Study.from_config`), with the comparisons it declares (`Declared`).

A study experiment declares, before anything is trained, the question, what it measures (efficiency
at the training budget, or information at convergence), a baseline and yardstick arms, and a *small*
family of directed comparisons; `clay_exp.report.study` analyses the runs against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: What a study may measure, as the report says it.
MEASURES = {
    "budget": "efficiency at this training budget (who learns fastest), not information at convergence",
    "convergence": "information at convergence (what location can add once training has converged)",
}
#: The directions a declared comparison may expect (lower loss is better).
EXPECTS = ("a<b", "a>b")


@dataclass(frozen=True)
class Declared:
    """One pre-registered comparison: L_a − L_b on `metric`, expected negative (``a<b``) or positive."""

    a: str
    b: str
    metric: str
    expect: str

    @property
    def sign(self) -> int:
        return -1 if self.expect == "a<b" else 1


@dataclass
class Study:
    """The ``study`` node of a study experiment's config (see docs/head_to_head.md, "The report")."""

    name: str
    question: str
    measures: str
    baseline: str | None
    yardsticks: list[str]
    metrics: list[str]
    alpha: float
    comparisons: list[Declared]
    predicted_ranking: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, node: dict[str, Any]) -> Study:
        """Parse and check a ``study`` node; a ValueError says what is wrong with it."""
        if not isinstance(node, dict):
            raise ValueError(f"study must be a mapping, got {type(node).__name__}")
        measures = str(node.get("measures", ""))
        if measures not in MEASURES:
            raise ValueError(f"study.measures={measures!r} must be one of {list(MEASURES)}")
        alpha = float(node.get("alpha", 0.05))
        if not 0 < alpha < 1:
            raise ValueError(f"study.alpha={alpha!r} must lie strictly between 0 and 1")
        metrics = [str(m) for m in node.get("metrics") or []]
        comparisons = []
        for i, c in enumerate(node.get("comparisons") or []):
            missing = [k for k in ("a", "b", "metric", "expect") if c.get(k) is None]
            if missing:
                raise ValueError(f"study.comparisons[{i}] lacks {missing}: {c!r}")
            if str(c["expect"]).replace(" ", "") not in EXPECTS:
                raise ValueError(f"study.comparisons[{i}].expect={c['expect']!r} must be one of {EXPECTS}")
            comparisons.append(
                Declared(str(c["a"]), str(c["b"]), str(c["metric"]), str(c["expect"]).replace(" ", ""))
            )
        if not comparisons:
            raise ValueError("study.comparisons is empty: a study declares the comparisons it tests")
        ranking = node.get("predicted_ranking") or {}
        baseline = node.get("baseline")
        return cls(
            name=str(node.get("name", "study")),
            question=str(node.get("question", "")),
            measures=measures,
            baseline=None if baseline is None else str(baseline),
            yardsticks=[str(y) for y in node.get("yardsticks") or []],
            metrics=metrics or list(dict.fromkeys(c.metric for c in comparisons)),
            alpha=alpha,
            comparisons=comparisons,
            predicted_ranking={str(k): [str(a) for a in v] for k, v in ranking.items()},
        )
