"""How the report writes numbers: the formatting every markdown part shares (`fmt`, `fmt_p`).

The lowest module of the presentation (it imports none of the others), so the per-section tables
(`clay_exp.report.markdown`), the studies and the reliance tables format alike.
"""

from __future__ import annotations

import math


def fmt(x: float | None, digits: int = 4) -> str:
    """`x` to `digits` decimals; a dash for a missing or non-finite value."""
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    """A p-value: three decimals, ``< 0.001`` below that, ``n/a`` when it could not be computed."""
    return "n/a" if not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
