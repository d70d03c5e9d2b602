"""End to end through Hydra's compose API: every encoding trains, results.json is right, errors are early."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from clay_exp.catalog import required_overrides, unavailable_reason
from clay_exp.config import config_options
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import ROOT, TINY, column, read_metrics


@pytest.mark.parametrize("injection", ["add", "token"])
@pytest.mark.parametrize("encoding", config_options("encoding"))
def test_fast_dev_run_every_encoding_and_injection(make_cfg, encoding, injection, tmp_path):
    why = unavailable_reason(encoding, batch_keys=None)  # e.g. an optional extra not installed
    if why:
        pytest.skip(f"{encoding}: {why}")
    data = required_overrides(encoding)  # the world its inputs need (the oracle's latents)
    cfg = make_cfg(
        [f"encoding={encoding}", f"injection={injection}", "trainer.fast_dev_run=true", *data, *TINY]
    )
    results = train(cfg)
    assert results.status == "completed"
    saved = read_results(tmp_path)
    assert saved["encoding"] == encoding and saved["injection"] == injection
    assert math.isfinite(saved["final"]["val/loss"])


@pytest.mark.parametrize("injection", ["clay_v1", "film"])
@pytest.mark.parametrize("encoding", ["none", "sincos", "hierarchical"])
def test_fast_dev_run_clay_v1_and_film(make_cfg, encoding, injection, tmp_path):
    # The newer injections with an encoding of each kind: no location, Clay v1's own 4 values
    # (unprojected under clay_v1), a learned table with its own optimizer groups.
    cfg = make_cfg([f"encoding={encoding}", f"injection={injection}", "trainer.fast_dev_run=true", *TINY])
    assert train(cfg).status == "completed"
    saved = read_results(tmp_path)
    assert saved["injection"] == injection and math.isfinite(saved["final"]["val/loss"])


def test_results_json_and_checkpoints_of_a_short_run(make_cfg, tmp_path):
    cfg = make_cfg(["encoding=hierarchical", "seed=3", "trainer.max_epochs=2", *TINY])
    train(cfg)
    r = read_results(tmp_path)
    rows = read_metrics(tmp_path)
    val = column(rows, "val/loss")
    assert r["status"] == "completed"
    assert (r["encoding"], r["seed"], r["experiment"], r["data"]) == (
        "hierarchical",
        3,
        "default",
        "synthetic",
    )
    assert r["steps"] == 2 * (64 // 16) and r["epochs"] == 2
    assert len(val) == 2  # one per epoch, no duplicate from the final validate
    assert r["best"]["val/loss"] == pytest.approx(min(val), rel=1e-6)
    assert r["final"]["val/loss"] == pytest.approx(val[-1], rel=1e-6)  # final weights = last epoch's
    assert r["params"]["encoding"] > 0 and r["params"]["backbone"] > 0
    assert r["wall_time_s"] > 0 and r["step_time_s"] > 0
    assert r["config"]["encoding"]["_target_"].endswith("HierarchicalTileEncoding")
    assert r["config"]["seed"] == 3
    assert set(r["git"]) == {"commit", "dirty"}
    assert Path(r["checkpoints"]["last"]).name == "last.ckpt" and Path(r["checkpoints"]["last"]).is_file()
    assert Path(r["checkpoints"]["best"]).is_file()
    assert (tmp_path / "csv" / "hparams.yaml").is_file()


def test_loss_goes_down(make_cfg, tmp_path):
    cfg = make_cfg(
        [
            "encoding=sincos",
            "trainer.max_epochs=4",
            "data.train_size=256",
            "data.val_size=128",
            *TINY[:1],
            *TINY[3:],
        ]
    )
    train(cfg)
    val = column(read_metrics(tmp_path), "val/loss")
    assert len(val) == 4
    assert val[-1] < val[0] - 0.02, val


def test_failed_run_leaves_a_failed_record(make_cfg, tmp_path):
    cfg = make_cfg(["encoding=sincos", "injection=concat", *TINY])
    with pytest.raises(Exception, match="injection='concat'"):
        train(cfg)
    r = read_results(tmp_path)
    assert r["status"] == "failed" and "concat" in r["error"]["message"]


def test_unknown_encoding_lists_the_valid_ones(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg(["encoding=bogus"])
    message = str(info.value)
    for name in config_options("encoding"):
        assert name in message


def test_wandb_logger_is_offline_and_named(make_cfg, tmp_path):
    cfg = make_cfg(["logger=many", "encoding=xyz", "seed=2", "experiment_name=cmp"])
    wandb_cfg = cfg.logger.wandb
    assert (wandb_cfg.name, wandb_cfg.group, wandb_cfg.job_type) == ("xyz-s2", "cmp", "xyz")
    assert "xyz" in list(wandb_cfg.tags)
    assert wandb_cfg.mode == "offline"
    assert {"csv", "wandb"} == set(cfg.logger)
    logger = instantiate(cfg.logger.csv)
    assert Path(logger.log_dir) == tmp_path / "csv"


@pytest.mark.slow
def test_wandb_offline_run_is_written(make_cfg, tmp_path):
    cfg = make_cfg(
        ["logger=many", "encoding=sincos", "trainer.max_steps=2", "trainer.limit_val_batches=1", *TINY]
    )
    train(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(runs[0].glob("run-*.wandb"))
    assert read_results(tmp_path)["status"] == "completed"


@pytest.mark.slow
def test_multirun_gives_each_job_its_folder(tmp_path):
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "encoding=none,sincos",
        "logger=csv",
        f"hydra.sweep.dir={tmp_path}",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        *TINY,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(tmp_path.glob("*/results.json"))
    assert [p.parent.name for p in results] == ["0-none-s0", "1-sincos-s0"]
    encodings = [json.loads(p.read_text())["encoding"] for p in results]
    assert encodings == ["none", "sincos"]
    assert all(json.loads(p.read_text())["status"] == "completed" for p in results)
    assert (tmp_path / "multirun.yaml").is_file()


def test_compile_wraps_the_backbone(make_cfg):
    import torch

    from clay_exp.train import build_module

    module = build_module(make_cfg(["compile=true"]))
    assert isinstance(module.model, torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(build_module(make_cfg()).model, torch._dynamo.eval_frame.OptimizedModule)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_trainer_configs_compose(make_cfg, trainer):
    cfg = make_cfg([f"trainer={trainer}"])
    expected = {"cpu": "cpu", "gpu": "gpu", "ddp": "auto"}[trainer]
    assert cfg.trainer.accelerator == expected
    if trainer == "gpu":
        assert cfg.trainer.precision == "bf16-mixed"
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 2
