"""A run recorded before a class its config names moved still resumes, probes and reports: reading
its record renames the moved ``_target_`` (`clay_exp.moved_targets`)."""

from __future__ import annotations

import copy

import hydra.utils
import pytest
from omegaconf import OmegaConf

from clay_exp.config import compose_config
from clay_exp.moved_targets import MOVED_TARGETS, current_targets
from clay_exp.results import RunRecord
from clay_exp.resume import config_differences

OLD_WORLD = "clay_exp.data.hierarchical.HierarchicalWorld"


@pytest.mark.parametrize("old", sorted(MOVED_TARGETS))
def test_every_moved_class_imports_under_its_new_name_and_no_longer_under_its_old(old):
    new = MOVED_TARGETS[old]
    assert hydra.utils.get_class(new).__name__ == old.rsplit(".", 1)[1]
    with pytest.raises(ImportError):
        hydra.utils.get_class(old)


def test_the_configs_name_the_new_paths(tmp_path):
    for data in ("synthetic", "hierarchical_world", "earth"):
        target = compose_config([f"data={data}"], tmp_path).data.world._target_
        assert target in MOVED_TARGETS.values() and target not in MOVED_TARGETS


def test_a_record_written_before_the_move_reads_as_a_run_of_today(tmp_path):
    today = OmegaConf.to_container(compose_config(["data=hierarchical_world"], tmp_path), resolve=True)
    old = copy.deepcopy(today)
    old["data"]["world"]["_target_"] = OLD_WORLD
    old["callbacks"] = [{"_target_": OLD_WORLD}]  # inside a list too, whatever the key around it
    record = RunRecord.from_dict({"status": "completed", "config": old})
    assert record.config["data"]["world"]["_target_"] == "clay_exp.data.worlds.HierarchicalWorld"
    assert record.config["callbacks"] == [{"_target_": "clay_exp.data.worlds.HierarchicalWorld"}]
    assert list(record.config) == list(old)  # nothing else changes, not even the order
    # resume= compares the recorded config with this one: the move is no difference
    assert config_differences(record.config, {**today, "callbacks": record.config["callbacks"]}) == []
    # and its world builds (what the report's floors and the embedding probe instantiate)
    world = hydra.utils.instantiate(OmegaConf.create(record.config["data"]["world"]))(length=2, chip_size=8)
    assert len(world) == 2


def test_a_value_that_is_not_a_target_is_left_alone():
    config = {"name": OLD_WORLD, "nested": [{"path": OLD_WORLD}], "_target_": "torch.nn.Linear"}
    assert current_targets(config) == config
