"""The per-encoding table: rows, ranks, the gap closed, paired tests, what is never pooled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clay_exp.report import Metric, Run, compare, comparison_frame, holm, paired_t_test, section_markdown
from tests.report.factory import LOSSES, mixed_runs, run

LOSS = Metric("val/loss")


@pytest.fixture
def runs() -> list[Run]:
    return mixed_runs()


def gap(own: str, baseline: str, yardstick: str) -> float:
    base, best = np.mean(LOSSES[baseline]), np.mean(LOSSES[yardstick])
    return (base - np.mean(LOSSES[own])) / (base - best)


def test_rows_ranked_with_gap_closed_and_failures_listed(runs):
    (section,) = compare(runs).sections
    assert [r.label for r in section.rows] == ["oracle", "sincos", "none", "xyz"]
    sincos = section.rows[1]
    assert sincos.stats["val/loss"].mean == pytest.approx(np.mean(LOSSES["sincos"]))
    assert sincos.stats["val/loss"].n == 3  # the failed seed 3 is not averaged in
    assert sincos.gap_closed["val/loss"] == pytest.approx(gap("sincos", "none", "oracle"))
    assert section.rows[0].gap_closed["val/loss"] == pytest.approx(1.0)
    assert section.rows[2].gap_closed["val/loss"] == pytest.approx(0.0)
    assert {(r.encoding, r.status) for r in section.not_averaged} == {
        ("sincos", "failed"),
        ("xyz", "running"),
    }
    assert section.metrics == [LOSS]  # val_heldout/loss logged by no run: no column


def test_gap_closed_against_a_chosen_baseline_and_yardstick(runs):
    (section,) = compare(runs, baseline="sincos", yardstick="oracle").sections
    closed = {r.encoding: r.gap_closed.get("val/loss") for r in section.rows}
    assert closed["sincos"] == pytest.approx(0.0) and closed["oracle"] == pytest.approx(1.0)
    assert closed["none"] == pytest.approx(gap("none", "sincos", "oracle")) and closed["none"] < 0
    assert closed["xyz"] is None  # no mean, no share
    text = section_markdown(section)
    assert "Gap closed = (L_sincos − L_encoding) / (L_sincos − L_oracle)" in text
    assert f" | {gap('none', 'sincos', 'oracle'):.0%} | " in text
    # The other way round: the share is measured from the new baseline towards the new yardstick.
    (section,) = compare(runs, baseline="oracle", yardstick="none").sections
    sincos = next(r for r in section.rows if r.encoding == "sincos")
    assert sincos.gap_closed["val/loss"] == pytest.approx(gap("sincos", "oracle", "none"))
    # An anchor that did not run: no column at all, and the text does not mention it.
    (section,) = compare(runs, yardstick="hierarchical").sections
    assert not any(r.gap_closed for r in section.rows)
    assert "Gap closed" not in section_markdown(section)


def test_gap_closed_for_a_metric_where_higher_is_better():
    acc = Metric("test/acc", higher_is_better=True)
    values = {"chance": [0.5, 0.5], "mid": [0.8, 0.7], "best": [0.9, 0.9]}
    runs = [run(e, s, None, metrics={acc.key: v}) for e, vs in values.items() for s, v in enumerate(vs)]
    (section,) = compare(runs, [acc], baseline="chance", yardstick="best").sections
    mid = next(r for r in section.rows if r.encoding == "mid")
    assert mid.gap_closed[acc.key] == pytest.approx((0.5 - 0.75) / (0.5 - 0.9))  # 62.5 %


def test_pairwise_tests_paired_by_seed_with_holm(runs):
    (section,) = compare(runs).sections
    tests = {(t.better, t.worse): t for t in section.tests}
    assert set(tests) == {("oracle", "sincos"), ("oracle", "none"), ("sincos", "none")}
    diffs = np.subtract(LOSSES["none"], LOSSES["oracle"])
    t = tests[("oracle", "none")]
    assert (t.n, t.diff.mean) == (3, pytest.approx(diffs.mean()))
    assert t.p == pytest.approx(paired_t_test(diffs))
    expected = holm([tests[k].p for k in tests])
    assert [tests[k].p_holm for k in tests] == pytest.approx(expected)
    assert all(t.significant == (t.p_holm < 0.05) for t in section.tests)


def test_higher_is_better_metric_as_a_probe_would_report():
    acc = Metric("probe/land_acc", higher_is_better=True)
    runs = [
        run(e, s, None, metrics={acc.key: v})
        for e, vs in {"a": [0.7, 0.72], "b": [0.9, 0.93]}.items()
        for s, v in enumerate(vs)
    ]
    (section,) = compare(runs, metrics=[acc], description="Probe accuracy.").sections
    assert [r.label for r in section.rows] == ["b", "a"]
    (t,) = section.tests
    assert (t.better, t.worse) == ("b", "a") and t.diff.mean == pytest.approx(0.205)
    assert "higher is better" in section_markdown(section)


def test_secondary_metric_shown_where_present():
    runs = [
        run(e, s, 0.5 + s / 100, metrics={"val_heldout/loss": 0.6 + s / 100})
        for e in ("none", "xyz")
        for s in range(2)
    ]
    (section,) = compare(runs).sections
    assert [m.key for m in section.metrics] == ["val/loss", "val_heldout/loss"]
    assert "val_heldout/loss (mean ± 95 % CI)" in section_markdown(section)
    assert comparison_frame(compare(runs))["val_heldout/loss mean"].tolist() == pytest.approx([0.605, 0.605])


def test_variants_and_settings_are_never_averaged_together():
    runs = [run("sincos", s, 0.4, injection=inj) for inj in ("add", "token") for s in range(2)]
    runs += [
        Run(Path("/other"), "sincos", 0, "completed", {"val/loss": 0.3}, {"experiment": "b", "data": "earth"})
    ]
    sections = compare(runs).sections
    assert [s.title for s in sections] == ["experiment=b · data=earth", "experiment=cmp · data=synthetic"]
    assert sorted(r.label for r in sections[1].rows) == ["sincos (injection=add)", "sincos (injection=token)"]


def test_injections_of_one_sweep_are_separate_rows_with_their_own_anchors():
    """A sweep over injection=add,token,clay_v1: one row per encoding and injection, each row's gap
    measured against the none and oracle runs of its own injection, tests between every row."""
    shift = {"add": 0.0, "token": -0.05, "clay_v1": 0.1}  # each injection moves every loss
    runs = [
        run(e, s, v + shift[inj], injection=inj)
        for inj in shift
        for e, vs in LOSSES.items()
        for s, v in enumerate(vs)
    ]
    (section,) = compare(runs).sections
    assert len(section.rows) == 9 and all(len(r.runs) == 3 for r in section.rows)
    by_label = {r.label: r for r in section.rows}
    for inj, d in shift.items():
        row = by_label[f"sincos (injection={inj})"]
        assert row.variant == {"injection": inj} and {r.variant["injection"] for r in row.runs} == {inj}
        assert row.stats["val/loss"].mean == pytest.approx(np.mean(LOSSES["sincos"]) + d)
        # same shift for all three encodings of one injection: the share is the unshifted one
        assert row.gap_closed["val/loss"] == pytest.approx(gap("sincos", "none", "oracle"))
    assert len(section.tests) == 9 * 8 // 2
    table = comparison_frame(compare(runs))
    assert sorted(table["injection"].unique()) == ["add", "clay_v1", "token"]
    assert "`sincos (injection=clay_v1)`" in section_markdown(section)


def test_config_differences_among_averaged_runs_are_noted():
    runs = [
        run(
            "none",
            s,
            0.5,
            config={"model": {"optimizer": {"lr": lr}}, "seed": s, "data": {"shuffle_seed": s}},
        )
        for s, lr in ((0, 1e-3), (1, 2e-3))
    ]
    runs.append(
        run("none", 2, None, status="failed", config={"model": {"optimizer": {"lr": -1}}, "data": {"x": 1}})
    )
    (section,) = compare(runs).sections
    (note,) = section.notes
    assert note.endswith("(beyond encoding and seed): `model.optimizer.lr`.")


def test_bad_input_is_refused_early():
    with pytest.raises(ValueError, match=r"confidence=1\.5"):
        compare([run("none", 0, 0.5)], confidence=1.5)
    with pytest.raises(ValueError, match="at least one run"):
        compare([])
    with pytest.raises(ValueError, match="baseline and yardstick are both 'none'"):
        compare([run("none", 0, 0.5)], baseline="none", yardstick="none")
