"""Nothing a user ran is lost: interruption, resume, determinism, failing jobs, DDP, bad shapes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import ROOT, TINY, column, read_metrics

# 4 steps per epoch, 12 in all; last.ckpt every 2 steps
SHORT = [
    *TINY,
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=2",
]


@pytest.fixture
def restore_sigint():
    """Lightning ignores SIGINT after handling a KeyboardInterrupt; give pytest its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def steps_of(rows: list[dict[str, str]], key: str) -> list[int]:
    return [int(r["step"]) for r in rows if r.get(key)]


def test_interrupted_run_keeps_its_state_and_resumes_continuously(make_cfg, tmp_path, restore_sigint):
    reference_dir = tmp_path / "reference"
    train(make_cfg(SHORT, reference_dir))
    reference = read_metrics(reference_dir)

    run = tmp_path / "run"
    stop = ["+callbacks.stop._target_=tests.helpers.InterruptAfterSteps", "+callbacks.stop.steps=6"]
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(make_cfg([*SHORT, *stop], run))
    r = read_results(run)
    assert r["status"] == "interrupted" and r["steps"] == 6
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert steps_of(read_metrics(run), "train/loss") == list(range(6))  # flushed on the way out
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["losses_at_best"]["val"] == pytest.approx(column(read_metrics(run), "val/loss")[0], rel=1e-6)

    results = train(make_cfg([*SHORT, "resume=true"], run))
    assert results.status == "completed" and results.steps == 12
    assert results.resumed[0]["step"] == 6
    rows = read_metrics(run)
    assert steps_of(rows, "train/loss") == list(range(12))  # no gap, no duplicate
    assert steps_of(rows, "val/loss") == steps_of(reference, "val/loss") == [3, 7, 11]
    # the best epoch survives the interruption (the best val/loss may come from before it)
    val = column(rows, "val/loss")
    assert column(rows, "val/loss_best")[-1] == pytest.approx(min(val), rel=1e-6)
    assert results.best["val/loss"] == pytest.approx(min(val), rel=1e-6)
    # Before the interruption the two runs are the same run; after it, the optimizer and scheduler
    # state continue where they were (the learning rate schedule is the reference's).
    assert column(rows, "train/loss")[:6] == column(reference, "train/loss")[:6]
    assert column(rows, "lr-AdamW/backbone") == pytest.approx(
        column(reference, "lr-AdamW/backbone"), rel=1e-9
    )


def test_resume_refuses_a_different_config(make_cfg, tmp_path):
    train(make_cfg([*TINY, "trainer.max_epochs=1"], tmp_path))
    with pytest.raises(ValueError, match=r"seed: 0 -> 1"):
        train(make_cfg([*TINY, "trainer.max_epochs=2", "seed=1", "resume=true"], tmp_path))
    # only the budget changed: the finished run is extended
    results = train(make_cfg([*TINY, "trainer.max_epochs=2", "resume=true"], tmp_path))
    assert results.status == "completed" and results.epochs == 2


def test_resume_without_a_checkpoint_says_so(make_cfg, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        train(make_cfg([*TINY, "resume=true"], tmp_path))


def test_same_seed_same_val_loss(make_cfg, tmp_path):
    cfg = [*TINY, "trainer.max_epochs=2", "encoding=hierarchical"]
    a = train(make_cfg(cfg, tmp_path / "a")).final["val/loss"]
    b = train(make_cfg(cfg, tmp_path / "b")).final["val/loss"]
    c = train(make_cfg([*cfg, "seed=1"], tmp_path / "c")).final["val/loss"]
    assert a == pytest.approx(b, abs=1e-6)
    assert abs(a - c) > 1e-4


def test_wrong_band_count_fails_before_the_first_step(make_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"\(B, 4, 32, 32\).*got \(16, 3, 32, 32\)"):
        train(make_cfg([*TINY, "data.bands=3", "model.backbone.in_chans=4"], tmp_path))
    r = read_results(tmp_path)
    assert r["status"] == "failed" and r["steps"] == 0


def test_crash_leaves_checkpoint_and_failed_record(make_cfg, tmp_path):
    crash = ["+callbacks.crash._target_=tests.helpers.FailAfterSteps", "+callbacks.crash.steps=5"]
    with pytest.raises(RuntimeError, match="test crash"):
        train(make_cfg([*SHORT, *crash], tmp_path))
    r = read_results(tmp_path)
    assert r["status"] == "failed" and r["error"]["type"] == "RuntimeError"
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # saved at step 4, before the crash


@pytest.mark.slow
def test_multirun_with_a_failing_job_keeps_the_others(tmp_path):
    cmd = [
        sys.executable, "train.py", "-m", "injection=add,concat", "encoding=sincos", "logger=csv",
        f"hydra.sweep.dir={tmp_path}", "trainer.max_steps=2", "trainer.limit_val_batches=1", *TINY,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    good, bad = read_results(tmp_path / "0-sincos-s0"), read_results(tmp_path / "1-sincos-s0")
    assert good["status"] == "completed" and good["steps"] == 2
    assert bad["status"] == "failed" and "injection='concat'" in bad["error"]["message"]
    assert "injection='concat'" in proc.stderr  # Hydra reports the failed job


@pytest.mark.slow
def test_ddp_on_cpu_splits_data_and_writes_results_once(tmp_path):
    cmd = [
        sys.executable, "train.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "logger=csv", f"hydra.run.dir={tmp_path}", "trainer.max_epochs=1", *TINY,
        "+callbacks.record._target_=tests.helpers.RecordBatchIndices", f"+callbacks.record.folder={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"indices_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and not seen0 & seen1  # each rank trains on its own half
    assert len(seen0 | seen1) == 64
    r = read_results(tmp_path)
    assert r["status"] == "completed" and r["steps"] == 2  # 64 chips / (2 ranks x 16)
    logs = {p.name: p.read_text() for p in Path(tmp_path).glob("*.log")}
    assert sum("results written" in text for text in logs.values()) == 1, logs.keys()
