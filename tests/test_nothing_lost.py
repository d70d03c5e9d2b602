"""Nothing lost, nothing silently wrong (issue 23): checkpoints replaced atomically (kill -9 mid-save),
full disks (through the seams of clay_exp.files), resume checks that leave no trace, extending a
finished run, safe experiment names, one-line resolver errors, record permissions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clay_exp.files import DiskFullError, SpaceReserve, atomic_write
from clay_exp.results import RunRecord, read_results, write_results
from clay_exp.resume import AtomicCheckpointIO, checkpoint_step, find_checkpoint, safe_name
from clay_exp.train import train
from tests.helpers import ROOT, TINY, FullDisk, column, read_metrics

# 4 steps of 16 chips per epoch; last.ckpt every 2 steps
SHORT = [
    *TINY,
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=2",
]


def train_py(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for `proc`; its stderr."""
    try:
        return proc.communicate(timeout=timeout)[1]
    finally:
        proc.kill()


def snapshot(folder: Path) -> dict[str, tuple[int, str, int]]:
    """Every file below `folder` (hidden ones too): size, SHA-256 and modification time."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- checkpoints --------------------------------------------------------------------------------------
def test_a_checkpoint_save_replaces_the_file_and_a_full_disk_keeps_the_old_one(tmp_path, monkeypatch):
    io, target = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 2, "w": torch.ones(3)}, target)
    first = target.stat().st_ino
    io.save_checkpoint({"global_step": 4, "w": torch.ones(3)}, target)
    assert target.stat().st_ino != first  # a new file renamed into place, not the old one rewritten
    assert checkpoint_step(target) == 4 and os.listdir(target.parent) == ["last.ckpt"]

    disk = FullDisk(monkeypatch).fill_now()
    with pytest.raises(DiskFullError, match=rf"to write {target} .*the previous last\.ckpt is kept") as info:
        io.save_checkpoint({"global_step": 6, "w": torch.ones(10_000)}, target)
    assert str(info.value).count("\n") == 0 and disk.failures == 1
    assert checkpoint_step(target) == 4 and os.listdir(target.parent) == ["last.ckpt"]  # no partial file


@pytest.mark.slow
def test_a_save_killed_midway_leaves_the_previous_checkpoint_and_the_run_resumes(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "mid-save"
    pause = ["+callbacks.pause._target_=tests.helpers.PauseMidSave", f"+callbacks.pause.marker={marker}"]
    proc = train_py(f"hydra.run.dir={run}", *SHORT, "trainer.max_steps=8", *pause)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, f"the run ended before its second save:\n{finish(proc)[-3000:]}"
        assert time.monotonic() < deadline, "the second save never started"
        time.sleep(0.1)
    proc.kill()  # SIGKILL in the middle of writing last.ckpt (half of it on disk)
    proc.wait()
    checkpoints = run / "checkpoints"
    (partial,) = checkpoints.glob("last.ckpt.tmp-*")
    assert partial.stat().st_size > 0
    assert find_checkpoint(run) == checkpoints / "last.ckpt"  # the partial file is never taken for one
    assert checkpoint_step(checkpoints / "last.ckpt") == 2  # the previous save, whole

    err = finish(train_py(f"resume={run}", *SHORT, "trainer.max_steps=8"))
    record = read_results(run)
    assert record["status"] == "completed", err[-3000:]
    assert record["steps"] == 8 and record["resumed"][0]["step"] == 2
    assert not list(checkpoints.glob("*.tmp-*"))  # the killed save's leftover was removed


def test_a_full_disk_at_a_checkpoint_fails_the_run_and_still_writes_its_record(
    make_cfg, tmp_path, monkeypatch, caplog
):
    caplog.set_level("WARNING")
    FullDisk(monkeypatch).fill_on("last.ckpt.tmp-", nth=2)  # the disk fills during the second save
    with pytest.raises(DiskFullError, match=r"last\.ckpt"):
        train(make_cfg([*SHORT, "trainer.max_steps=8"], tmp_path))
    record = read_results(tmp_path)
    assert record["status"] == "failed" and record["exit_code"] == 1 and record["steps"] == 4
    cause = record["error"]["cause"]
    assert cause.startswith("DiskFullError: no space left on device to write ") and "last.ckpt" in cause
    # the record's own write failed too and went into the space reserved at the start
    assert "results.json was written into the space reserved for it" in caplog.text
    assert checkpoint_step(tmp_path / "checkpoints" / "last.ckpt") == 2
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # no partial checkpoint or record
    assert not (tmp_path / ".results.json.reserve").exists()


def test_the_record_reserve_holds_a_record_when_nothing_else_fits(tmp_path, monkeypatch):
    reserve = SpaceReserve(tmp_path, "results.json")
    assert reserve.create() and reserve.path.stat().st_blocks * 512 >= reserve.size
    disk = FullDisk(monkeypatch, free=0).fill_now()
    payload = json.dumps({"status": "failed", "pad": "x" * 50_000}).encode()
    atomic_write(tmp_path / "results.json", payload, reserve=reserve)
    assert (tmp_path / "results.json").read_bytes() == payload
    assert disk.failures == 2  # the ordinary write, then the new reserve's allocation
    assert sorted(os.listdir(tmp_path)) == ["results.json"]
    with pytest.raises(DiskFullError):  # no reserve left: an ordinary one-line error
        atomic_write(tmp_path / "results.json", b"{}", reserve=reserve)
    assert (tmp_path / "results.json").read_bytes() == payload


# -- extending a finished run -------------------------------------------------------------------------
def test_extending_a_finished_run_continues_from_its_last_step_with_its_schedule(make_cfg, tmp_path):
    budget = [*SHORT, "callbacks.last_checkpoint.every_n_train_steps=4"]  # saves at 4, and at the end
    first = train(make_cfg([*budget, "trainer.max_steps=6"], tmp_path))
    assert first.steps == 6 and checkpoint_step(tmp_path / "checkpoints" / "last.ckpt") == 6
    lr_first = column(read_metrics(tmp_path), "lr-AdamW/backbone")

    extended = train(make_cfg([*budget, "trainer.max_steps=10", "resume=true"], tmp_path))
    assert extended.status == "completed" and extended.steps == 10
    (entry,) = extended.resumed
    assert entry["step"] == 6  # not 4: no step is redone
    assert entry["lr_schedule"]["total_steps"] == 6 and entry["lr_schedule"]["policy"].startswith("kept")
    rows = read_metrics(tmp_path)
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == list(range(10))
    lr = column(rows, "lr-AdamW/backbone")
    assert lr[:6] == lr_first
    # the original cosine over 6 steps, then held at its floor (1.5e-3 x min_lr_ratio 0.01)
    assert lr[6:] == pytest.approx([1.5e-5] * 4, rel=1e-9)
    assert lr[5] > lr[6]  # still decaying up to the original end, never jumping back up


# -- resume checks: refused, and nothing written ------------------------------------------------------
def test_resume_without_a_record_is_refused_unless_forced(make_cfg, tmp_path):
    train(make_cfg([*SHORT, "trainer.max_steps=2"], tmp_path))
    (tmp_path / "results.json").unlink()
    before = snapshot(tmp_path)
    changed = [*SHORT, "trainer.max_steps=4", "model.optimizer.lr=0.01", "resume=true"]
    with pytest.raises(ValueError, match=r"has no results\.json.*resume_force=true"):
        train(make_cfg(changed, tmp_path))
    assert snapshot(tmp_path) == before
    forced = train(make_cfg([*SHORT, "trainer.max_steps=4", "resume=true", "resume_force=true"], tmp_path))
    assert forced.status == "completed" and forced.steps == 4
    assert forced.resumed[0]["forced"] == "it has no results.json"


def test_a_run_writes_hydras_files_itself_once_its_checks_pass(make_cfg, tmp_path):
    train(make_cfg([*SHORT, "trainer.max_steps=1", "seed=3"], tmp_path))
    hydra = tmp_path / ".hydra"
    assert sorted(os.listdir(hydra)) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "seed: 3" in (hydra / "config.yaml").read_text()
    assert "- seed=3" in (hydra / "overrides.yaml").read_text()
    assert "choices:" in (hydra / "hydra.yaml").read_text()


@pytest.mark.slow
def test_refused_resumes_leave_the_folder_as_it_was(tmp_path):
    run = tmp_path / "run"
    err = finish(train_py(f"hydra.run.dir={run}", *SHORT, "trainer.max_steps=4"))
    assert read_results(run)["status"] == "completed", err[-3000:]
    assert (run / ".hydra" / "overrides.yaml").is_file()
    # A copy of the finished run without its record (copy2 keeps the times the snapshot compares):
    # both refusals then run side by side.
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, copy_function=shutil.copy2)
    (bare / "results.json").unlink()
    before = {run: snapshot(run), bare: snapshot(bare)}
    # a changed learning rate: refused, naming the key
    changed = train_py(f"resume={run}", *SHORT, "trainer.max_steps=8", "model.optimizer.lr=0.01")
    # no record to compare against: refused unless forced
    unrecorded = train_py(f"resume={bare}", *SHORT, "trainer.max_steps=8", "data.batch_size=8")
    err = finish(changed)
    assert changed.returncode == 1 and "model.optimizer.lr: 0.0015 -> 0.01" in err, err[-2000:]
    err = finish(unrecorded)
    assert unrecorded.returncode == 1 and "has no results.json" in err and "resume_force=true" in err
    for folder, files in before.items():
        assert snapshot(folder) == files  # .hydra/*.yaml, .lock, train.log, the record: untouched


# -- names and errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "study_earth", "v1.2-final", "A_b-9"])
def test_safe_experiment_names_pass(name):
    assert safe_name(name) == name


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", ".hidden", "", "a b", "x" * 101, "ü"])
def test_unsafe_experiment_names_are_refused_naming_the_rule(name):
    with pytest.raises(ValueError, match=r"experiment_name=.* is not a safe folder name .*letters, digits"):
        safe_name(name)


def test_an_unsafe_experiment_name_stops_a_run_before_it_writes(make_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"experiment_name='\.\./x'"):
        train(make_cfg([*TINY, "experiment_name=../x"], tmp_path / "run"))
    assert not (tmp_path / "run").exists()


BAD_RUN_FOLDER_SETTINGS = [
    (["resume=/etc"], "Error: resume='/etc': no checkpoints/last.ckpt in /etc; pass a run folder"),
    (["experiment_name=../../x"], "Error: experiment_name='../../x' is not a safe folder name"),
    (["-m", "experiment_name=/x", "seed=0,1"], "Error: experiment_name='/x' is not a safe folder name"),
]


@pytest.mark.slow
def test_a_bad_run_folder_setting_is_one_line_and_writes_nothing(tmp_path):
    # The three commands run side by side (each is a fresh Python importing torch, then refused).
    procs = []
    for i, (args, message) in enumerate(BAD_RUN_FOLDER_SETTINGS):
        work = tmp_path / str(i) / "work"
        work.mkdir(parents=True)
        procs.append((train_py(*args, f"paths.root_dir={work}", *TINY, cwd=work), work, message))
    for proc, work, message in procs:
        err = finish(proc)
        assert proc.returncode == 1, err[-2000:]
        assert err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err
        assert os.listdir(work) == [] and not (work.parent / "x").exists()


# -- records ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_take_the_umask_like_every_other_file(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_results(tmp_path, RunRecord(status="completed"))
        other = tmp_path / "other"
        other.write_text("x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode == other.stat().st_mode & 0o777
