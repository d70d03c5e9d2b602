"""The study worlds can show what they are meant to show; the docs' claims match the floors."""

from __future__ import annotations

import pytest

from clay_exp.config import compose_config
from clay_exp.design.from_config import floors_from_config
from clay_exp.design.power import min_detectable_difference


def floors(overrides: list[str]) -> dict[str, float]:
    report = floors_from_config(compose_config(overrides), chips=192, draws=8)
    return {f.name: f.loss_mc for f in report.floors}


def test_the_known_answer_study_world_has_an_information_gap_seeds_can_see():
    f = floors(["experiment=study_known_answer", "arm=hierarchical"])
    gap = f["none"] - f["location"]
    # 5 seeds, 5 declared comparisons (Holm), power 0.8, per-seed sd of a paired difference 0.02
    # (docs/head_to_head.md's known-answer sweep showed sds of 0.01-0.03 at this kind of budget)
    mdd = min_detectable_difference(0.02, 5, alpha=0.05, k=5, target_power=0.8)
    assert gap > 0.08 and gap > 2 * mdd, (gap, mdd)


def test_the_default_hierarchical_world_gives_location_almost_nothing_beyond_the_pixels():
    # docs/head_to_head.md: on the default hierarchical_world the oracle's lead over `none` at 300
    # steps is learning speed, not information: the floors differ by less than 0.01
    f = floors(["data=hierarchical_world"])
    assert 0 < f["none"] - f["location"] < 0.01


@pytest.mark.parametrize("level", ["z3 only", "z6 only"])
def test_each_study_level_carries_information_of_its_own(level):
    f = floors(["experiment=study_known_answer", "arm=hierarchical"])
    assert f["none"] - f[level] > 0.04 and f[level] - f["location"] > 0.02
