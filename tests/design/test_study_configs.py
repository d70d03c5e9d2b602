"""Every study experiment composes: each swept arm builds under its own name, and what the study
declares (comparisons, predicted rankings, yardsticks) names arms the sweep runs."""

from __future__ import annotations

import hydra
import pytest
import torch
from hydra.utils import instantiate

from clay_exp.config import CONFIG_DIR, compose_config
from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.tuning.plan import make_plan

STUDIES = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("study_*.yaml"))


def swept_arms(experiment: str) -> list[str]:
    cfg = compose_config([f"experiment={experiment}"], hydra_node=True)
    return str(cfg.hydra.sweeper.params.arm).split(",")


def test_the_studies_are_found():
    assert {"study_known_answer", "study_earth", "study_sharing"} <= set(STUDIES)


@pytest.mark.parametrize("experiment", STUDIES)
def test_declared_arms_are_swept(experiment):
    arms = set(swept_arms(experiment))
    study = compose_config([f"experiment={experiment}"]).study
    declared = {a for c in study.comparisons for a in (c.a, c.b)} | set(study.yardsticks)
    assert declared <= arms, sorted(declared - arms)
    for metric, ranking in study.predicted_ranking.items():
        assert set(ranking) <= arms, (metric, sorted(set(ranking) - arms))
        assert len(set(ranking)) == len(ranking), metric


@pytest.mark.parametrize("experiment", STUDIES)
def test_every_swept_arm_builds_under_its_own_name(experiment, tmp_path):
    """The arms as they are defined (``~tuned``: without the values a tuning chose for them)."""
    for arm in swept_arms(experiment):
        cfg = compose_config([f"experiment={experiment}", f"arm={arm}", "~tuned"], tmp_path)
        assert cfg.encoding_name == arm
        encoding = instantiate(cfg.encoding)
        optimizer = hydra.utils.get_class(cfg.model.optimizer._target_)
        if arm.startswith("sgd_"):  # the SGD arms: SGD at the study's tuned rates
            assert optimizer is torch.optim.SGD and cfg.model.optimizer.lr == cfg.study.sgd.lr
            if isinstance(encoding, HierarchicalTileEncoding):
                assert encoding.lr_scale == cfg.study.sgd.table_lr_scale
                assert encoding.share_via == "grad" or encoding.share_scaling == "none"
        else:
            assert optimizer is torch.optim.AdamW
            if isinstance(
                encoding, HierarchicalTileEncoding
            ):  # the study's table rate, or the backbone's (1)
                want = 1.0 if arm == "hierarchical_base_rate" else cfg.study.get("table_lr_scale", 1.0)
                assert encoding.lr_scale == want
        if isinstance(encoding, HierarchicalTileEncoding):  # tables sit on the study's levels
            assert set(encoding.levels) <= set(cfg.study.levels) and encoding.max_zoom == cfg.study.fine_zoom


@pytest.mark.parametrize("experiment", ["study_known_answer", "study_earth", "study_sharing"])
def test_the_tuned_studies_declare_a_tuning_every_arm_can_run(experiment):
    """Every swept arm gets a space the tuner can set, on tuning seeds apart from the reported ones,
    the same trials and steps for all; the held-out objective has held-out tuning tiles to read."""
    plan = make_plan(experiment)
    assert {a.arm for a in plan.arms} == set(swept_arms(experiment))
    assert not set(plan.declaration.seeds) & set(plan.reported_seeds) and len(plan.reported_seeds) == 5
    assert plan.budget * 2 == plan.full_budget  # steps_fraction 0.5: half the epochs
    for arm in plan.arms:
        assert "model.optimizer.lr" in arm.space  # every arm tunes the backbone's rate
        assert all(knob.contains(arm.defaults[name]) for name, knob in arm.space.items()), arm.arm
    spaces = {a.arm: set(a.space) for a in plan.arms}
    assert spaces["none"] == {"model.optimizer.lr"}
    assert spaces["hierarchical"] == {"model.optimizer.lr", "encoding.lr_scale"}
    assert "encoding.degrees" in spaces["spherical_harmonics"]
    if "hierarchical_base_rate" in spaces:  # its tables at the backbone's rate: that is the arm
        assert spaces["hierarchical_base_rate"] == {"model.optimizer.lr"}
    if "sgd_none" in spaces:
        assert plan.arm("sgd_none").space["model.optimizer.lr"].high == 1.0
