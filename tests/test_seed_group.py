"""Several seeds in one process (issue 22, "feed the CPU"): the stacked MAE computes each seed's own
loss and gradients; a seed group gives each seed its single run's numbers, folder, record and log;
the sweeper groups a sweep's seeds; what a group cannot train is refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from clay_exp.jobs import train_runs
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.models.stacked import check_stackable, stacked_losses
from clay_exp.report.runs import load_runs
from clay_exp.results import RunRecord
from clay_exp.resume import prepare_resume
from clay_exp.seed_group import SEED_GROUP_FILE, group_seeds
from clay_exp.train import train
from hydra_plugins.clay_exp_seed_groups.seed_group_sweeper import group_jobs
from tests.helpers import ROOT, TINY, column, read_metrics

#: The study's world and arm (a table encoding with its own optimizer groups), tiny and short:
#: batches of 32 from 128 chips = 4 steps an epoch, 3 epochs, train/loss logged every step.
STUDY = ["experiment=study_known_answer", "arm=hierarchical", "~tuned"]
SHORT = [*TINY, "data.batch_size=32", "data.train_size=128", "trainer.max_epochs=3"]
SHORT += ["trainer.log_every_n_steps=1"]


def _models(k: int, location_dim: int) -> list[MaskedAutoencoderViT]:
    torch.manual_seed(0)
    kw = {"img_size": 16, "patch_size": 4, "in_chans": 2, "location_dim": location_dim, "mask_ratio": 0.75}
    return [MaskedAutoencoderViT(**kw) for _ in range(k)]


@pytest.mark.parametrize("location_dim", [8, 0], ids=["location", "none"])
def test_stacked_losses_are_each_models_own_loss_and_gradients(location_dim):
    models = _models(3, location_dim)
    g = torch.Generator().manual_seed(1)
    images = [torch.randn(8, 2, 16, 16, generator=g) for _ in models]
    locations = [torch.randn(8, location_dim, generator=g) if location_dim else None for _ in models]
    conds = [m.condition(loc, 8) for m, loc in zip(models, locations, strict=True)]
    noises = [torch.rand(8, 16, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    losses = stacked_losses(models, images, conds, noises)
    # each model's own forward, its masks drawn from the same seeded generator as the noise above
    own = [
        m(img, loc, generator=torch.Generator().manual_seed(s)).loss
        for s, (m, img, loc) in enumerate(zip(models, images, locations, strict=True))
    ]
    assert losses.shape == (3,)
    torch.testing.assert_close(losses, torch.stack(own), rtol=1e-5, atol=1e-6)
    assert (
        len({round(v.item(), 4) for v in torch.stack(own).detach()}) == 3
    )  # three different models, three losses
    losses.sum().backward()
    stacked_grads = [[p.grad.clone() for p in m.parameters()] for m in models]
    for m in models:
        m.zero_grad()
    for loss in own:
        loss.backward()
    for m, grads in zip(models, stacked_grads, strict=True):
        for p, grad in zip(m.parameters(), grads, strict=True):
            torch.testing.assert_close(grad, p.grad, rtol=1e-4, atol=1e-6)


def test_only_models_whose_injection_is_the_positions_stack():
    models = _models(2, 8)
    models[1] = MaskedAutoencoderViT(img_size=16, patch_size=4, in_chans=2, location_dim=8, injection="token")
    with pytest.raises(ValueError, match="injection='token'"):
        check_stackable(models)
    wider = MaskedAutoencoderViT(img_size=16, patch_size=4, in_chans=2, location_dim=8, embed_dim=32)
    with pytest.raises(ValueError, match="not one architecture"):
        check_stackable([_models(1, 8)[0], wider])


def test_a_seed_group_gives_each_seed_its_single_runs_numbers(make_cfg, tmp_path):
    group_dir = tmp_path / "group"
    records = train_runs(make_cfg([*STUDY, *SHORT, "seed_group=[3,4]"], group_dir))
    assert [r.seed for r in records] == [3, 4] and all(r.status == "completed" for r in records)
    manifest = json.loads((group_dir / SEED_GROUP_FILE).read_text())
    assert manifest == {
        "seeds": [3, 4],
        "runs": ["seed-3", "seed-4"],
        "status": {"3": "completed", "4": "completed"},
    }
    singles = {s: train(make_cfg([*STUDY, *SHORT, f"seed={s}"], tmp_path / f"single{s}")) for s in (3, 4)}
    curves = []
    for record in records:
        folder = group_dir / f"seed-{record.seed}"
        single = singles[record.seed]
        assert RunRecord.load(folder).seed_group["seeds"] == [3, 4]
        assert record.output_dir == str(folder) and record.config["seed"] == record.seed
        assert (record.steps, record.epochs) == (single.steps, single.epochs) == (12, 3)
        for key in ("val/loss", "val_heldout/loss", "val/loss_shuffled", "val/loss_missing"):
            assert record.final[key] == pytest.approx(single.final[key], rel=2e-5, abs=0), key
        assert record.best["val/loss"] == pytest.approx(single.best["val/loss"], rel=2e-5, abs=0)
        # the same log: every column, train/loss at every step within float rounding of the single run's
        rows, single_rows = read_metrics(folder), read_metrics(tmp_path / f"single{record.seed}")
        assert set(rows[0]) == set(single_rows[0])
        grouped, alone = column(rows, "train/loss"), column(single_rows, "train/loss")
        assert len(grouped) == len(alone) == 12
        assert grouped == pytest.approx(alone, rel=2e-5, abs=0)
        curves.append(grouped)
        assert column(rows, "val/loss") == pytest.approx(column(single_rows, "val/loss"), rel=2e-5, abs=0)
        # checkpoints where a single run keeps them, the best one named by its epoch and step
        best, last = record.checkpoints["best"], record.checkpoints["last"]
        assert os.path.basename(best) == os.path.basename(single.checkpoints["best"])
        state = torch.load(last, weights_only=True)
        assert state["global_step"] == 12 and "optimizer_states" in state and "state_dict" in state
        # a group's seed is not continued as a single run: refused, naming its group
        with pytest.raises(ValueError, match=r"trained with seeds \[3, 4\]"):
            prepare_resume(folder, record.config)
    assert curves[0] != pytest.approx(curves[1], rel=1e-3)  # two seeds, two different runs
    assert sorted(r.seed for r in load_runs(group_dir)) == [3, 4]  # the report sees two runs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["injection=token"], "injection='token'"),
        (["data.world.world_seed=${seed}"], "change with the seed"),
        (["seed_group=[1,1]"], "distinct integer seeds"),
        (["seed_group=[]"], "distinct integer seeds"),
    ],
    ids=["injection", "seeded-data", "repeated-seed", "empty"],
)
def test_a_group_it_cannot_train_is_refused_before_anything_is_written(
    make_cfg, tmp_path, overrides, message
):
    cfg = make_cfg([*STUDY, *SHORT, "seed_group=[0,1]", *overrides], tmp_path / "group")
    with pytest.raises(ValueError, match=message):
        train_runs(cfg)
    assert not (tmp_path / "group").exists()


def test_group_seeds_reads_a_list_of_distinct_integers():
    assert group_seeds(OmegaConf.create([10, 11, 12])) == [10, 11, 12]
    for bad in (5, [1.5], [True, 2], "0,1"):
        with pytest.raises(ValueError, match="seed_group"):
            group_seeds(bad)


def test_the_sweeper_groups_each_settings_seeds():
    jobs = [[f"arm={a}", f"seed={s}", "x=1"] for a in ("none", "sincos") for s in (10, 11, 12, 13, 14)]
    grouped = group_jobs(jobs, 2)
    assert grouped == [
        ["arm=none", "x=1", "seed=10", "seed_group=[10,11]"],
        ["arm=none", "x=1", "seed=12", "seed_group=[12,13]"],
        ["arm=none", "x=1", "seed=14", "seed_group=[14]"],
        ["arm=sincos", "x=1", "seed=10", "seed_group=[10,11]"],
        ["arm=sincos", "x=1", "seed=12", "seed_group=[12,13]"],
        ["arm=sincos", "x=1", "seed=14", "seed_group=[14]"],
    ]
    assert group_jobs(jobs, 1) == jobs  # the basic sweeper's jobs
    assert group_jobs([["arm=none"], ["arm=xyz"]], 5) == [["arm=none"], ["arm=xyz"]]  # no seed swept
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="seeds_per_process"):
            group_jobs(jobs, bad)
    with pytest.raises(ValueError, match="seed_group"):
        group_jobs([["seed=1", "seed_group=[1,2]"]], 2)


def test_a_sweep_with_seeds_per_process_writes_one_ordinary_run_per_seed(tmp_path):
    """From the command line as a user would: 3 seeds, 2 a job -> 2 jobs (the last seed alone), 3
    runs, each its own folder, record and (offline) wandb run."""
    cmd = [
        sys.executable, str(ROOT / "train.py"), "-m", *STUDY, "arm=none", "seed=0,1,2",
        "seeds_per_process=2", "logger=many", f"hydra.sweep.dir={tmp_path}", *SHORT, "trainer.max_epochs=1",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert jobs == ["0-none-s0", "1-none-s2"]
    assert json.loads((tmp_path / "0-none-s0" / SEED_GROUP_FILE).read_text())["seeds"] == [0, 1]
    runs = load_runs(tmp_path)
    assert sorted((r.encoding, r.seed, r.status) for r in runs) == [
        ("none", s, "completed") for s in (0, 1, 2)
    ]
    wandb_ids = {RunRecord.load(r.path).wandb["id"] for r in runs}
    assert len(wandb_ids) == 3  # one wandb run per seed, also in a job of two
    overrides = OmegaConf.load(tmp_path / "0-none-s0" / "seed-1" / ".hydra" / "overrides.yaml")
    assert "seed=1" in overrides and not any(o.startswith("seed_group=") for o in overrides)


def test_a_group_that_fails_records_every_seed_failed(make_cfg, tmp_path):
    cfg = make_cfg([*STUDY, *SHORT, "seed_group=[0,1]", "model.optimizer.lr=-1"], tmp_path / "group")
    with pytest.raises(ValueError, match="learning rate"):
        train_runs(cfg)
    manifest = json.loads((tmp_path / "group" / SEED_GROUP_FILE).read_text())
    assert manifest["status"] == {"0": "failed", "1": "failed"}
    for seed in (0, 1):
        record = RunRecord.load(tmp_path / "group" / f"seed-{seed}")
        assert record.status == "failed" and "learning rate" in record.error["message"]
