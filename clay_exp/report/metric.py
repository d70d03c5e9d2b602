"""What a report compares: a `Metric` is a key of each run's final metrics and its direction.

The lowest module of the report (it imports none of the others), so that reading runs
(`clay_exp.report.runs`), the tables and the studies can all name metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A number compared across encodings: a key of each run's `metrics` and its direction."""

    key: str
    higher_is_better: bool = False

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


#: The MAE comparison: final val/loss, and the loss on held-out regions when a world logs it.
LOSS_METRICS = (Metric("val/loss"), Metric("val_heldout/loss"))
