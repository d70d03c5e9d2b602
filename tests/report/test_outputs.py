"""What the report writes: the markdown table, the CSV files, the plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clay_exp.report import compare, plot_final, to_markdown, write_report
from tests.report.factory import LOSSES, mixed_runs, run


@pytest.fixture
def runs():
    return mixed_runs()


def test_markdown_table(runs):
    comparison = compare(runs, sources=["/sweep"])
    text = to_markdown(comparison)
    s = comparison.sections[0].rows[1].stats["val/loss"]
    assert f"| 2 | `sincos` | 3 of 4 (1 failed) | {s.mean:.4f} ± {s.half_width:.4f} |" in text
    assert "| — | `xyz` | 0 of 1 (1 running) | — |" in text
    assert "Holm–Bonferroni" in text and "paired t-test" in text
    assert "| `sincos-s3` | `sincos` | 3 | failed | ValueError: Invalid learning rate: -1 |" in text
    gap = (0.51 - np.mean(LOSSES["sincos"])) / (0.51 - 0.40)
    assert "gap closed (val/loss)" in text and f" | {gap:.0%} | " in text
    assert "From `/sweep` (11 runs)." in text


def test_a_long_or_piped_error_stays_one_cell(runs):
    runs.append(run("wrap", 0, None, status="failed", error="KeyError: a|b " + "x" * 1000))
    text = to_markdown(compare(runs))
    (line,) = [line for line in text.splitlines() if line.startswith("| `wrap-s0`")]
    assert "KeyError: a\\|b " in line and line.endswith("… |") and len(line) < 400


def test_write_report_writes_every_file(tmp_path, runs):
    comparison = compare(runs)
    written = write_report(comparison, runs, tmp_path, curves=False)
    assert sorted(written) == ["comparison.csv", "comparison.md", "final_loss.png", "runs.csv"]
    assert (tmp_path / "comparison.md").read_text() == to_markdown(comparison) + "\n"
    table = pd.read_csv(tmp_path / "comparison.csv").set_index("encoding")
    assert table.loc["sincos", "val/loss mean"] == pytest.approx(np.mean(LOSSES["sincos"]))
    assert table.loc["sincos", "runs"] == 4 and table.loc["sincos", "runs_completed"] == 3
    per_run = pd.read_csv(tmp_path / "runs.csv")
    assert len(per_run) == len(runs) and sorted(per_run["status"].unique()) == [
        "completed",
        "failed",
        "running",
    ]


def test_final_plot_shows_the_chosen_metrics_only():
    runs = [
        run(e, s, 0.5 + s / 100, metrics={"val_heldout/loss": 0.6 + s / 100})
        for e in ("none", "xyz")
        for s in range(2)
    ]
    comparison = compare(runs)

    def panels(*keys: str) -> list[str]:
        return [ax.get_xlabel() for ax in plot_final(comparison, keys or None).axes]

    assert panels() == ["val/loss", "val_heldout/loss"]
    assert panels("val_heldout/loss") == ["val_heldout/loss"]
