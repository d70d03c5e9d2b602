"""End to end: a tiny real sweep through Hydra multirun (parallel launcher), then the report and the
notebook on it. One sweep serves every test of this module."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import joblib
import nbformat
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from nbclient import NotebookClient
from omegaconf import OmegaConf
from PIL import Image

from clay_exp.config import compose_config
from clay_exp.report import LOSS_METRICS, latest_sweep, load_runs, metric_curve
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import ROOT, TINY

pytestmark = pytest.mark.slow
ENCODINGS, SEEDS = ("none", "sincos"), (0, 1)
BROKEN = "4-sincos-s2"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """2 encodings x 2 seeds of the real experiment, 2 jobs at a time, plus one run that fails.

    Run from a temp folder with no sweep folder given, as a user would: the sweep lands in
    ./logs/compare_encodings/multiruns/<date>.
    """
    cwd = tmp_path_factory.mktemp("project")
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "experiment=compare_encodings",
        "hydra/launcher=parallel",
        f"encoding={','.join(ENCODINGS)}",
        f"seed={','.join(map(str, SEEDS))}",
        "logger=csv",
        "trainer.max_epochs=2",
        *TINY,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = latest_sweep(cwd / "logs", "compare_encodings")
    assert list((cwd / "logs" / "compare_encodings" / "multiruns").iterdir()) == [root]
    # A run of the same sweep that crashes in training (its optimizer refuses the learning rate).
    cfg = compose_config(
        [
            "experiment=compare_encodings",
            "logger=csv",
            "encoding=sincos",
            "seed=2",
            "model.optimizer.lr=-1",
            *TINY,
        ],
        root / BROKEN,
    )
    with pytest.raises(ValueError, match="learning rate"):
        train(cfg)
    GlobalHydra.instance().clear()
    return root


@pytest.fixture(scope="module")
def report(sweep) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/compare.py", str(sweep)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def completed_losses(sweep: Path, encoding: str) -> list[float]:
    results = [read_results(p) for p in sorted(sweep.glob(f"*-{encoding}-s*"))]
    return [r["final"]["val/loss"] for r in results if r["status"] == "completed"]


def test_parallel_launcher_ran_every_job_with_its_share_of_the_cores(sweep):
    multirun = OmegaConf.load(sweep / "multirun.yaml")
    assert multirun.hydra.launcher._target_.endswith("JoblibLauncher") and multirun.hydra.launcher.n_jobs == 2
    jobs = sorted(p.parent.name for p in sweep.glob("[0-3]-*/results.json"))
    assert jobs == ["0-none-s0", "1-none-s1", "2-sincos-s0", "3-sincos-s1"]
    for job in jobs:
        r = read_results(sweep / job)
        assert r["status"] == "completed" and r["experiment"] == "compare_encodings"
        assert r["torch_threads"] == max(1, joblib.cpu_count() // 2)  # loky: cores / n_jobs per worker


def test_table_has_every_encoding_with_the_runs_own_numbers(sweep, report):
    with (sweep / "comparison.csv").open() as f:
        rows = {r["encoding"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(ENCODINGS)
    for encoding in ENCODINGS:
        losses = completed_losses(sweep, encoding)
        assert len(losses) == 2
        assert float(rows[encoding]["val/loss mean"]) == pytest.approx(np.mean(losses), rel=1e-12)
        assert float(rows[encoding]["val/loss std"]) == pytest.approx(np.std(losses, ddof=1), rel=1e-9)
        assert int(rows[encoding]["runs_completed"]) == 2
    assert int(rows["sincos"]["runs"]) == 3 and int(rows["none"]["runs"]) == 2
    markdown = (sweep / "comparison.md").read_text()
    for encoding in ENCODINGS:
        assert f"{np.mean(completed_losses(sweep, encoding)):.4f} ± " in markdown
    assert "| `sincos` | 2 of 3 (1 failed) |" in markdown
    assert "paired t-test" in markdown
    assert markdown.strip() in report.stdout  # the same report on stdout


def test_broken_run_is_listed_as_failed(sweep, report):
    markdown = (sweep / "comparison.md").read_text()
    failed = markdown.split("### Runs not in the averages")[1]
    assert f"| `{BROKEN}` | `sincos` | 2 | failed | ValueError: Invalid learning rate: -1" in failed
    with (sweep / "runs.csv").open() as f:
        statuses = {Path(r["run"]).name: r["status"] for r in csv.DictReader(f)}
    assert statuses[BROKEN] == "failed" and list(statuses.values()).count("completed") == 4
    assert "1 run(s) failed or did not finish" in report.stderr


def test_plots_are_real_images(sweep, report):
    for name in ("loss_curves.png", "final_loss.png"):
        with Image.open(sweep / name) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # drawn, not blank


def test_loss_curves_come_from_the_csv_logs(sweep):
    run = next(r for r in load_runs(sweep) if r.path.name == "0-none-s0")
    curve = metric_curve(run, LOSS_METRICS[0].key)
    with (sweep / "0-none-s0" / "csv" / "metrics.csv").open() as f:
        logged = [(int(r["step"]), float(r["val/loss"])) for r in csv.DictReader(f) if r["val/loss"]]
    assert list(curve.index) == [step for step, _ in logged]
    assert curve.to_numpy() == pytest.approx([loss for _, loss in logged])
    assert len(logged) == 2  # one per epoch


def test_notebook_executes_on_the_sweep(sweep, monkeypatch):
    monkeypatch.setenv("CLAY_EXP_SWEEP", str(sweep))
    notebook = nbformat.read(ROOT / "notebooks" / "compare_encodings.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # raises on any cell error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = "".join(o["data"].get("text/markdown", "") for o in outputs if "data" in o)
    assert len(images) == 2
    assert "| `none` |" in tables and "| `sincos` |" in tables and BROKEN in tables


def test_optuna_lr_search_minimises_the_returned_val_loss(tmp_path, monkeypatch):
    """`python train.py -m hparams_search=optuna_lr ...`, in-process, two trials."""
    argv = [
        "train.py",
        "-m",
        "hparams_search=optuna_lr",
        "encoding=sincos",
        "hydra.sweeper.n_trials=2",
        "logger=csv",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path}",
        *TINY,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    trials = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/results.json"))]
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    lrs = [t["config"]["model"]["optimizer"]["lr"] for t in trials]
    assert len(set(lrs)) == 2 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    losses = [t["final"]["val/loss"] for t in trials]
    assert best.best_value == pytest.approx(min(losses))
    assert best.best_params["model.optimizer.lr"] == pytest.approx(lrs[int(np.argmin(losses))])
