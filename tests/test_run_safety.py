"""Runs that cannot be hijacked, mixed up or silently wrong: safe checkpoint loading, one writer per
run folder, non-finite losses, honest exit codes — with real processes where it matters."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clay_exp.config import compose_config
from clay_exp.module import NonFiniteLossError
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import ROOT, TINY, PickledCode

# 4 steps of 16 chips per epoch; a checkpoint every 2 steps
SHORT = [
    *TINY,
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=2",
]


def train_py(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended before {path.name} appeared:\n{proc.communicate()[1][-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.1)


def plant_checkpoint(run: Path, marker: Path) -> Path:
    """A last.ckpt that runs code (creates `marker`) if unpickled unsafely, beside an unfinished record."""
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"global_step": 3, "payload": PickledCode(str(marker))}, ckpt)
    (run / "results.json").write_text(json.dumps({"status": "interrupted"}))
    return ckpt


# -- checkpoints ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_carries_code(tmp_path):
    marker = tmp_path / "pwned"
    # resume=<dir>: the folder named by the user
    named = tmp_path / "named"
    ckpt = plant_checkpoint(named, marker)
    record_before = (named / "results.json").read_bytes()
    # resume=true: a folder planted among the experiment's runs (both commands run side by side)
    planted = tmp_path / "logs" / "default" / "runs" / "2020-01-01_00-00-00"
    plant_checkpoint(planted, marker)
    by_name = train_py(f"resume={named}", *SHORT)
    latest = train_py("resume=true", f"paths.root_dir={tmp_path}", *SHORT)
    _, err = by_name.communicate(timeout=300)
    assert by_name.returncode != 0
    assert f"cannot use checkpoint {ckpt}" in err and "weights_only=True" in err
    assert (named / "results.json").read_bytes() == record_before  # no side effect on the record
    _, err = latest.communicate(timeout=300)
    assert latest.returncode != 0 and f"cannot use checkpoint {planted}" in err
    assert not marker.exists()


def test_corrupt_checkpoint_error_names_the_file(make_cfg, tmp_path):
    train(make_cfg([*SHORT, "trainer.max_epochs=1"], tmp_path))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=re.escape(str(ckpt))):
        train(make_cfg([*SHORT, "trainer.max_epochs=2", "resume=true"], tmp_path))


def test_a_moved_run_folder_resumes(make_cfg, tmp_path):
    first = train(make_cfg([*SHORT, "trainer.max_epochs=1"], tmp_path / "a"))
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = train(make_cfg([*SHORT, "trainer.max_epochs=2", "resume=true"], tmp_path / "b"))
    assert moved.status == "completed" and moved.steps == 2 * first.steps
    assert moved.resumed[0]["step"] == first.steps


# -- one writer per run folder ----------------------------------------------------------------------
def test_run_folders_are_named_finer_than_a_second(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    cfg = compose_config([f"paths.root_dir={tmp_path}"])
    name = Path(OmegaConf.select(HydraConfig.get(), "run.dir")).name
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", name), name
    assert cfg.experiment_name == "default"


@pytest.mark.slow
def test_a_live_run_folder_has_one_writer_and_sigterm_exits_143(tmp_path):
    # The owner trains until it is stopped: with a budget it could finish before the second process
    # (a fresh Python importing torch: 20-60 s on a loaded 2-core machine) reached its lock check.
    until_stopped = "trainer.max_epochs=100000"
    run = tmp_path / "run"
    started = tmp_path / "started"
    slow = ["+callbacks.slow._target_=tests.helpers.SlowSteps", f"+callbacks.slow.marker={started}"]
    owner = train_py(f"hydra.run.dir={run}", until_stopped, *SHORT, *slow)
    try:
        wait_for(started, owner)
        overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
        # a second run into the same folder, and a resume of the live run (side by side): both
        # refused, nothing written
        second = ([f"hydra.run.dir={run}"], [f"resume={run}"])
        others = [train_py(*extra, until_stopped, *SHORT) for extra in second]
        for other in others:
            _, err = other.communicate(timeout=300)
            assert other.returncode != 0
            assert f"run folder {run} is in use" in err and f'"pid": {owner.pid}' in err, err[-2000:]
        assert read_results(run)["status"] == "running"
        assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides  # not a refused run's
        owner.send_signal(signal.SIGTERM)
        owner.communicate(timeout=120)
    finally:
        owner.kill()
    assert owner.returncode == 128 + signal.SIGTERM
    record = read_results(run)
    assert record["status"] == "interrupted" and record["error"]["signal"] == "SIGTERM"
    assert record["exit_code"] == 143 and record["steps"] >= 3
    # the lock went with the process: the run can be continued
    resumed = train_py(f"resume={run}", until_stopped, f"trainer.max_steps={record['steps'] + 2}", *SHORT)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert read_results(run)["status"] == "completed" and read_results(run)["steps"] == record["steps"] + 2


@pytest.mark.slow
def test_sigterm_during_setup_leaves_a_final_status(tmp_path):
    run, started = tmp_path / "run", tmp_path / "started"
    slow = ["+callbacks.slow._target_=tests.helpers.SlowInit", f"+callbacks.slow.marker={started}"]
    proc = train_py(f"hydra.run.dir={run}", *SHORT, *slow)
    try:
        wait_for(started, proc)
        assert read_results(run)["status"] == "running"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    record = read_results(run)
    assert record["status"] == "interrupted" and record["error"]["signal"] == "SIGTERM"


# -- non-finite losses -------------------------------------------------------------------------------
def test_a_nan_loss_fails_the_run_at_its_step(make_cfg, tmp_path):
    poison = ["+callbacks.poison._target_=tests.helpers.PoisonBatch", "+callbacks.poison.step=3"]
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(make_cfg([*SHORT, *poison], tmp_path))
    record = read_results(tmp_path)
    assert record["status"] == "failed" and record["steps"] == 3 and record["exit_code"] == 1
    assert record["error"]["cause"].startswith("NonFiniteLossError: non-finite training loss (nan) at step 3")


@pytest.mark.slow
def test_a_failed_run_exits_non_zero(tmp_path):
    poison = ["+callbacks.poison._target_=tests.helpers.PoisonBatch", "+callbacks.poison.step=1"]
    proc = train_py(f"hydra.run.dir={tmp_path}", *SHORT, *poison)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "non-finite training loss" in err
    assert read_results(tmp_path)["status"] == "failed"
