"""The head-to-head configs compose as documented: experiments, launchers, the lr search, wandb."""

from __future__ import annotations

import re
from collections.abc import Sequence
from unittest import mock

import pytest
import submitit
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from clay_exp.catalog import required_overrides
from clay_exp.config import CONFIG_DIR, config_options, swept_options
from clay_exp.results import RunRecord
from clay_exp.session import wandb_summary
from clay_exp.train import set_torch_threads

EXPERIMENT_FILE = CONFIG_DIR / "experiment" / "compare_encodings.yaml"
NOT_SWEPT = re.compile(r"^# not swept: (\S+) — (.+)$", re.MULTILINE)
#: "every encoding but these": Hydra's glob over the group's options (extended override syntax)
GLOB_EXCLUDE = re.compile(r"glob\(\*(?:,exclude=\[([\w,]*)\])?\)")


def compose_with_hydra(overrides: Sequence[str]) -> DictConfig:
    """The full config, `hydra` node included (what the sweeper and launcher see)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def swept(cfg: DictConfig, key: str) -> list[str]:
    return str(cfg.hydra.sweeper.params[key]).split(",")


@pytest.mark.parametrize(
    "experiment", ["compare_encodings", "compare_encodings_gpu", "compare_encodings_known_answer"]
)
def test_comparison_sweeps_every_encoding_but_the_declared_exclusions(experiment):
    cfg = compose_with_hydra([f"experiment={experiment}"])
    sweep = str(cfg.hydra.sweeper.params.encoding)
    match = GLOB_EXCLUDE.fullmatch(sweep)
    assert match, f"{experiment} sweeps {sweep!r}, not every encoding but some: glob(*,exclude=[...])"
    excluded = set(filter(None, (match.group(1) or "").split(",")))
    encodings = swept_options([f"experiment={experiment}"], "encoding")  # what Hydra's sweeper runs
    assert encodings == sorted(set(config_options("encoding")) - excluded)
    # each exclusion says why, on a "# not swept:" line (an experiment that inherits the sweep, gpu,
    # inherits the lines)
    own = NOT_SWEPT.findall((CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text())
    reasons = dict(own or NOT_SWEPT.findall(EXPERIMENT_FILE.read_text()))
    assert set(reasons) == excluded and all(reasons.values()), (excluded, reasons)
    # every swept encoding runs in this experiment: the overrides its class requires (e.g. the
    # oracle's world) are the experiment's own choices
    choices = cfg.hydra.runtime.choices
    for name in encodings:
        for override in required_overrides(name):
            group, option = override.split("=")
            assert choices[group] == option, f"{experiment} sweeps {name}, which needs {override}"
    assert swept(cfg, "seed") == ["0", "1", "2"]
    assert cfg.experiment_name == experiment


def test_known_answer_comparison_runs_the_oracle_on_its_world():
    cfg = compose_with_hydra(["experiment=compare_encodings_known_answer"])
    assert cfg.hydra.runtime.choices.data == "hierarchical_world"
    encodings = swept_options(["experiment=compare_encodings_known_answer"], "encoding")
    assert "oracle" in encodings and "none" in encodings
    assert "oracle" not in swept_options(["experiment=compare_encodings"], "encoding")


def test_gpu_comparison_is_bigger_and_on_a_gpu():
    cpu = compose_with_hydra(["experiment=compare_encodings"])
    gpu = compose_with_hydra(["experiment=compare_encodings_gpu"])
    assert gpu.hydra.runtime.choices.model == "mae_small" and gpu.trainer.accelerator == "gpu"
    assert gpu.model.backbone.embed_dim > cpu.model.backbone.embed_dim
    gpu_steps = gpu.trainer.max_epochs * gpu.data.train_size // gpu.data.batch_size
    cpu_steps = cpu.trainer.max_epochs * cpu.data.train_size // cpu.data.batch_size
    assert gpu_steps > cpu_steps
    assert (
        cpu.hydra.runtime.choices.data == compose_with_hydra([]).hydra.runtime.choices.data
    )  # default world


def test_parallel_launcher_is_joblib_with_two_processes():
    launcher = compose_with_hydra(["hydra/launcher=parallel"]).hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher")
    assert (launcher.n_jobs, launcher.prefer) == (2, "processes")


def test_slurm_launcher_composes_to_an_sbatch_script(tmp_path):
    cfg = compose_with_hydra(
        [
            "experiment=compare_encodings_gpu",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    submitted = {}

    def capture(executor, fn, *args):  # stands in for sbatch: no cluster here
        submitted.update(executor=executor, overrides=args[0])
        return []

    # submitit refuses to build a SLURM executor where `srun` is missing; pretend it is there.
    with (
        mock.patch.object(submitit.SlurmExecutor, "affinity", return_value=1),
        mock.patch.object(submitit.AutoExecutor, "map_array", capture),
    ):
        launcher.launch([["encoding=none", "seed=0"], ["encoding=xyz", "seed=1"]], initial_job_idx=0)
    assert submitted["overrides"] == (["encoding=none", "seed=0"], ["encoding=xyz", "seed=1"])
    script = submitted["executor"]._executor._make_submission_file_text("python -u job.py", "uid")
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--time=120",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--ntasks-per-node=1",
        "--job-name=compare_encodings_gpu",
        f"--output={tmp_path}/.submitit/",
    ):
        assert f"#SBATCH {line}" in script, line


def test_optuna_lr_search_composes_per_encoding():
    cfg = compose_with_hydra(["hparams_search=optuna_lr", "experiment=compare_encodings", "encoding=xyz"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (sweeper.direction, sweeper.n_jobs) == ("minimize", 1)
    assert sweeper.params["model.optimizer.lr"] == "tag(log, interval(1e-4, 1e-2))"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert cfg.hydra.runtime.choices.encoding == "xyz"


def test_wandb_groups_tags_and_summary():
    cfg = compose_with_hydra(["experiment=compare_encodings", "encoding=xyz", "seed=2", "logger=many"])
    wandb = cfg.logger.wandb
    assert (wandb.group, wandb.job_type, wandb.name) == ("compare_encodings", "xyz", "xyz-s2")
    assert list(wandb.tags) == ["xyz", cfg.data_name, "split-random", "injection-add"]
    results = RunRecord(
        status="completed",
        final={"val/loss": 0.4, "val/loss_best": 0.39, "val_heldout/loss": 0.5},
        best={"val/loss": 0.39},
        params={"encoding": 1234},
        step_time_s=0.1,
    )
    assert wandb_summary(results) == {
        "final/val_loss": 0.4,
        "final/val_heldout_loss": 0.5,
        "best/val_loss": 0.39,
        "params/encoding": 1234,
        "time/step_s": 0.1,
    }
    assert wandb_summary(RunRecord(status="completed", best={"val/loss": None})) == {}


def test_torch_threads_knob():
    default = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 == torch.get_num_threads()
        assert set_torch_threads(None) == default
        with pytest.raises(ValueError, match="torch_threads=0"):
            set_torch_threads(0)
    finally:
        torch.set_num_threads(default)
