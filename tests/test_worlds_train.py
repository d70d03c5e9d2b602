"""End to end: every world trains through train.py's path; the region split logs and records val_heldout."""

from __future__ import annotations

import math

import pytest
from hydra.errors import InstantiationException

from clay_exp.data.geotiff.demo import write_demo_geotiffs
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import TINY, column, read_metrics


def test_region_split_reports_seen_and_unseen_regions(make_cfg, tmp_path):
    cfg = make_cfg(["data.split=region", "trainer.max_epochs=2", *TINY])
    train(cfg)
    rows = read_metrics(tmp_path)
    val, heldout = column(rows, "val/loss"), column(rows, "val_heldout/loss")
    assert len(val) == len(heldout) == 2  # one per epoch, in the logs
    r = read_results(tmp_path)
    assert r["final"]["val/loss"] == pytest.approx(val[-1], rel=1e-6)
    assert r["final"]["val_heldout/loss"] == pytest.approx(heldout[-1], rel=1e-6)
    best_epoch = min(range(2), key=val.__getitem__)
    assert r["best"]["val/loss"] == pytest.approx(val[best_epoch], rel=1e-6)
    # the held-out loss of the model selected on seen regions, never a minimum over held-out data
    assert r["best"]["val_heldout/loss"] == pytest.approx(heldout[best_epoch], rel=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [["data=earth"], ["data=hierarchical_world", "encoding=oracle", "data.split=region"]],
    ids=["earth", "hierarchical_world-oracle-region"],
)
def test_generated_worlds_train(make_cfg, tmp_path, overrides):
    cfg = make_cfg([*overrides, "trainer.max_epochs=1", "trainer.limit_val_batches=1", *TINY])
    assert train(cfg).status == "completed"
    final = read_results(tmp_path)["final"]
    assert all(math.isfinite(final[k]) for k in final)
    if "data.split=region" in overrides:
        assert "val_heldout/loss" in final


def test_geotiff_world_trains(make_cfg, tmp_path):
    folder = tmp_path / "rasters"
    write_demo_geotiffs(folder, size=64)
    cfg = make_cfg(
        ["data=geotiff", f"data.paths={folder}", "data.split=region", "trainer.max_epochs=1", *TINY],
        output_dir=tmp_path / "run",
    )
    assert train(cfg).status == "completed"
    final = read_results(tmp_path / "run")["final"]
    assert math.isfinite(final["val/loss"]) and math.isfinite(final["val_heldout/loss"])


def test_oracle_on_another_world_fails_before_training(make_cfg, tmp_path):
    cfg = make_cfg(["data=synthetic", "encoding=oracle", *TINY])
    with pytest.raises(InstantiationException, match="only valid with data=hierarchical_world"):
        train(cfg)
    r = read_results(tmp_path)
    assert r["status"] == "failed" and "only valid with data=hierarchical_world" in r["error"]["message"]
    assert r["steps"] is None  # it never reached the trainer
    # the record keeps the innermost error, not only Hydra's "Error in call to target" wrapper
    assert r["error"]["cause"].startswith("ValueError: ") and "hierarchical_world" in r["error"]["cause"]
