"""The embedding probe: the labels the worlds know, a frozen encoder's embedding with the location
withheld or given, and the whole command line on trained runs (files, report, compare.py)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from clay_exp.config import compose_config
from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld
from clay_exp.probe.embeddings import PROBE_FILE, ProbeSettings, labels_for, probe_sweeps
from clay_exp.results import RunRecord
from clay_exp.train import train
from tests.helpers import TINY, load_script


def test_earth_labels_are_the_majority_class_and_the_land_share_of_the_class_map():
    world = EarthWorld(12, "val", chip_size=8, chip_extent_deg=2.0, map_grid=8)
    batch = world[list(range(12))]
    zone, land = labels_for(world)
    assert (zone.name, zone.score, zone.num_classes, land.name, land.score) == (
        "zone",
        "acc",
        32,
        "land",
        "r2",
    )
    classes = world.class_map(batch["lat"], batch["lon"]).flatten(1)
    majority, share = zone.values(batch), land.values(batch)
    for i in range(12):
        counts = Counter(classes[i].tolist())
        assert counts[int(majority[i])] == max(counts.values())  # a most common class of the chip
        on_land = sum(n for c, n in counts.items() if c != world.koppen.ocean)
        assert float(share[i]) == pytest.approx(on_land / 64)
    assert 0 < float(share.mean()) <= 1


def test_hierarchical_labels_are_the_true_factors_of_the_level():
    world = HierarchicalWorld(10, "val", bands=2, chip_size=8, levels=[0, 3, 6], level_shares=[0.3, 0.3, 0.3])
    batch = world[list(range(10))]
    (label,) = labels_for(world, level=3)
    assert (label.name, label.score, label.num_classes) == ("z3", "r2", None)
    factors = world.tile_factors(batch["lat"], batch["lon"])  # (B, levels, d)
    torch.testing.assert_close(label.values(batch), factors[:, 1].double())
    with pytest.raises(ValueError, match=r"level=10 is not one of this world's levels \[0, 3, 6\]"):
        labels_for(world, level=10)
    with pytest.raises(
        ValueError, match=r"labels of data=earth and data=hierarchical_world only, not SyntheticWorld"
    ):
        labels_for(SyntheticWorld(4))
    with pytest.raises(ValueError, match=r"checkpoint='first' is not one of \['best', 'last'\]"):
        ProbeSettings(checkpoint="first")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two tiny trained runs at seed 0: `none` and `xyz` (hierarchical_world, held-out tiles)."""
    root = tmp_path_factory.mktemp("sweep")
    for encoding in ("none", "xyz"):
        overrides = ["logger=csv", f"encoding={encoding}", "data=hierarchical_world", "data.split=region"]
        overrides += [
            "data.world.levels=[0,3,6]",
            "data.world.level_shares=[0.3,0.3,0.3]",
            "trainer.max_epochs=2",
        ]
        train(compose_config([*overrides, *TINY], root / f"{encoding}-s0"))
    return root


def test_the_command_line_probes_every_run_and_writes_the_report(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert load_script("probe_embeddings").main([str(sweep), "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    keys = {f"{s}/probe_z3_r2_{m}" for s in ("val", "val_heldout") for m in ("withheld", "given")}
    probes = {name: json.loads((sweep / name / PROBE_FILE).read_text()) for name in ("none-s0", "xyz-s0")}
    for probe in probes.values():
        assert set(probe["metrics"]) == keys and probe["settings"]["checkpoint"] == "best"
        assert set(probe["lambda"]) == {"z3_withheld", "z3_given"}
    none, xyz = probes["none-s0"]["metrics"], probes["xyz-s0"]["metrics"]
    # `none` has no location to withhold: the same features, the same probe, the same score
    assert none["val/probe_z3_r2_withheld"] == none["val/probe_z3_r2_given"]
    assert xyz["val/probe_z3_r2_withheld"] != xyz["val/probe_z3_r2_given"]
    assert "# Embedding probe" in printed and "### Embedding probe on val_heldout" in printed
    assert (out / "comparison.md").read_text().strip() == printed.strip()
    # compare.py shows the probe beside the losses (from the run folders' files)
    assert load_script("compare").main([str(sweep), "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "### Embedding probe on val" in report and "val/probe_z3_r2_withheld − none" in report
    assert "### Reliance on location and robustness" in report


def test_a_run_without_its_checkpoint_is_listed_as_failed(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    for job in ("none-s0", "xyz-s0"):  # the copy's records name the copy's files (the original is gone)
        record = RunRecord.load(copy / job)
        record.checkpoints = {
            k: str(copy / job / "checkpoints" / Path(v).name) for k, v in record.checkpoints.items()
        }
        record.save(copy / job)
    shutil.rmtree(copy / "xyz-s0" / "checkpoints")
    runs = {
        r.encoding: r
        for r in probe_sweeps([copy], ProbeSettings(checkpoint="last"), write_runs=False, log=print)
    }
    assert runs["xyz"].status == "failed" and "no last checkpoint" in runs["xyz"].error
    assert runs["none"].status == "completed" and "val/probe_z3_r2_given" in runs["none"].metrics
