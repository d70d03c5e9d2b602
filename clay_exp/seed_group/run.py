"""Training a seed group: each seed's config and folder, the checks before anything is written,
the group's training, each seed's own end (final validation, record), the group's manifest."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from clay_exp.files import atomic_write
from clay_exp.results import RunRecord
from clay_exp.resume import CHECKPOINT_DIR, LAST_CHECKPOINT
from clay_exp.seed_group.module import SeedGroupData, SeedGroupModule, SeedRouter
from clay_exp.session import RunSession, instantiate_group, write_hydra_files
from clay_exp.speed import Speed, apply_to_datamodule
from clay_exp.train import build_module, final_metrics, set_torch_threads
from clay_exp.tuning.record import tuning_record

#: The group's manifest in the job folder: the seeds and their run folders.
SEED_GROUP_FILE = "seed_group.json"
#: The data settings that may differ between a group's seeds: the training order only.
SEED_DEPENDENT_DATA = ("shuffle_seed", "seed")


def seed_folder(group_dir: Path, seed: int) -> Path:
    return group_dir / f"seed-{seed}"


def group_seeds(value: Any) -> list[int]:
    """The seeds of ``seed_group`` (a list of distinct integers), or a ValueError naming the value."""
    seeds = list(value) if isinstance(value, list | tuple | ListConfig) else None
    if not seeds or any(isinstance(s, bool) or int(s) != s for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"seed_group={value!r} must be a list of distinct integer seeds, e.g. seed_group=[10,11,12]"
        )
    return [int(s) for s in seeds]


def seed_config(cfg: DictConfig, seed: int, output_dir: Path) -> DictConfig:
    """One seed's config: the group's with ``seed`` set and its own folder (what its single run has,
    except the folder and ``seed_group``, which say where and how it ran)."""
    out = copy.deepcopy(cfg)
    with open_dict(out):
        out.seed = int(seed)
        out.paths.output_dir = str(output_dir)
    return out


def check_group(cfg: DictConfig, configs: Sequence[DictConfig]) -> None:
    """Refuse, before anything is written, what a seed group cannot train as the single runs would."""
    problems = []
    if cfg.get("injection") != "add":
        problems.append(f"injection={cfg.get('injection')!r} (only 'add' stacks)")
    if cfg.get("compile"):
        problems.append("compile=true")
    if cfg.get("resume") not in (None, False) or cfg.get("ckpt_path"):
        problems.append("resume= / ckpt_path= (a group starts its seeds from scratch)")
    trainer = cfg.trainer
    if str(trainer.get("accelerator", "auto")) not in ("cpu", "auto") or (
        trainer.get("accelerator", "auto") == "auto" and torch.cuda.is_available()
    ):
        problems.append("an accelerator other than the CPU (measured there; on a GPU run seeds as jobs)")
    if trainer.get("devices", 1) not in (1, "1", "auto") or trainer.get("strategy") not in (None, "auto"):
        problems.append(f"trainer.devices={trainer.get('devices')!r} / strategy (one process, one device)")
    if int(trainer.get("accumulate_grad_batches") or 1) != 1:
        problems.append("trainer.accumulate_grad_batches > 1")
    if trainer.get("gradient_clip_algorithm") not in (None, "norm"):
        problems.append(f"trainer.gradient_clip_algorithm={trainer.get('gradient_clip_algorithm')!r}")
    data = [OmegaConf.to_container(c.data, resolve=True) for c in configs]
    for d in data:
        for key in SEED_DEPENDENT_DATA:
            d.pop(key, None)  # type: ignore[union-attr]
    if any(d != data[0] for d in data[1:]):
        problems.append("data settings that change with the seed (the seeds share validation chips)")
    if problems:
        raise ValueError(
            "seed_group / seeds_per_process: these seeds cannot be trained together: "
            + "; ".join(problems)
            + ". Run them as separate jobs (seeds_per_process=1)."
        )


def continue_counters(trainer: L.Trainer, steps: int, epochs: int) -> None:
    """A fresh Trainer that validates a seed after the group's training stands at the group's step
    and epoch, so what it logs (LocationReliance's final values) lands at the step a single run's
    final validation logs it at."""
    loop = trainer.fit_loop
    loop.epoch_loop._batches_that_stepped = steps
    loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step.total.completed = steps
    loop.epoch_progress.current.completed = epochs


def write_seed_hydra_files(config: DictConfig, seed: int) -> None:
    """The seed's ``.hydra/`` (config, Hydra's settings, overrides with ``seed=<seed>``), as a
    single run's folder has them; the report reads a run's config choices from there."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.instance().cfg
    overrides = [o for o in hydra_cfg.hydra.overrides.task if not o.startswith(("seed=", "seed_group="))]
    write_hydra_files(Path(config.paths.output_dir), config, hydra_cfg, [*overrides, f"seed={seed}"])


def write_manifest(group_dir: Path, seeds: Sequence[int], records: Sequence[RunRecord] | None = None) -> Path:
    payload: dict[str, Any] = {
        "seeds": list(seeds),
        "runs": [str(seed_folder(group_dir, s).name) for s in seeds],
    }
    if records is not None:
        payload["status"] = {str(r.seed): r.status for r in records}
    path = group_dir / SEED_GROUP_FILE
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode())
    return path


def train_seed_group(cfg: DictConfig) -> list[RunRecord]:
    """Train the seeds of ``cfg.seed_group`` together; one record per seed, in their order."""
    seeds = group_seeds(cfg.seed_group)
    group_dir = Path(cfg.paths.output_dir)
    configs = [seed_config(cfg, s, seed_folder(group_dir, s)) for s in seeds]
    check_group(cfg, configs)
    group_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(group_dir, seeds)
    runs: list[RunSession] = []
    try:
        with ExitStack() as stack:
            for c in configs:
                runs.append(stack.enter_context(RunSession(c)))
            threads = set_torch_threads(cfg.get("torch_threads"))
            members, datamodules, states = [], [], []
            for run, c in zip(runs, configs, strict=True):
                write_seed_hydra_files(c, int(c.seed))
                run.record.torch_threads = threads
                run.record.tuning = tuning_record(c)
                run.record.seed_group = {"seeds": seeds, "folder": str(group_dir)}
                # as clay_exp.train.train builds a single run: the same draws from the same seed
                L.seed_everything(c.seed, workers=True)
                datamodule = instantiate(c.data)
                apply_to_datamodule(Speed.from_config(c.get("speed")), datamodule)
                members.append(build_module(c))
                datamodules.append(datamodule)
                states.append(torch.get_rng_state())
            loggers = [run.make_loggers(concurrent=True) for run in runs]
            diagnostics = (cfg.get("callbacks") or {}).get("encoding_diagnostics")
            checkpoint_dirs = [Path(c.paths.output_dir) / CHECKPOINT_DIR for c in configs]
            group = SeedGroupModule(
                members,
                seeds,
                states,
                checkpoint_dirs,
                gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
                diagnostics_every=int(diagnostics.every_n_steps) if diagnostics else None,
            )
            timer = Timer()
            trainer = instantiate(
                cfg.trainer,
                callbacks=[timer],
                logger=SeedRouter(seeds, loggers),
                plugins=runs[0].plugins(),
                gradient_clip_val=None,  # each seed's own, in OptimizerGroup
                enable_checkpointing=False,  # each seed's own, in its folder
            )
            for run, member in zip(runs, members, strict=True):
                run.attach(trainer, member)
            with ExitStack() as fitting:
                for run in runs:
                    fitting.enter_context(run.fitting())
                trainer.fit(group, datamodule=SeedGroupData(datamodules))
            steps, epochs = trainer.global_step, trainer.current_epoch
            train_time = timer.time_elapsed("train")
            for i, (run, c, member, dm) in enumerate(zip(runs, configs, members, datamodules, strict=True)):
                last = group.save_member(i, checkpoint_dirs[i] / LAST_CHECKPOINT)
                callbacks = instantiate_group(c.get("callbacks"))
                seed_trainer = instantiate(c.trainer, callbacks=callbacks, logger=run.loggers or False)
                continue_counters(seed_trainer, steps, epochs)
                seed_trainer.validate(member, datamodule=dm, verbose=False)
                final = final_metrics(seed_trainer)
                best = {f"{name}/loss": value for name, value in member.losses_at_best.items()}
                run.complete_values(
                    final,
                    best=best,
                    steps=steps,
                    epochs=epochs,
                    train_time_s=train_time / len(seeds),
                    checkpoints={
                        "last": str(last),
                        "best": str(group.best_paths[i]) if group.best_paths[i] else None,
                    },
                )
                run.record.seed_group["train_time_s"] = train_time
    finally:  # each seed's final status, also when the group failed or was stopped
        if runs:
            write_manifest(group_dir, seeds, [run.record for run in runs])
    return [run.record for run in runs]
