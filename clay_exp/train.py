"""One training run from a composed Hydra config: instantiate -> fit -> validate -> results.json.

Kept apart from the root ``train.py`` (which only adds ``@hydra.main``) so tests can call `train`
with a config from Hydra's compose API, in-process. The bookkeeping around the story told here (the
folder's lock, resume, the record, signals, exit codes) is `clay_exp.session.RunSession`.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from clay_exp.results import RunRecord
from clay_exp.session import RunSession, instantiate_group
from clay_exp.speed import Speed, apply_to_datamodule
from clay_exp.tuning.record import tuning_record

#: torch's own choice for this process (all cores, or OMP_NUM_THREADS as a parallel launcher sets it).
DEFAULT_TORCH_THREADS = torch.get_num_threads()


def set_torch_threads(threads: int | None) -> int:
    """Apply the ``torch_threads`` knob (None: torch's default, also after an earlier job of the same
    process set another number) and return the threads in use."""
    if threads is not None and int(threads) < 1:
        raise ValueError(f"torch_threads={threads!r} must be a positive number of threads or null")
    torch.set_num_threads(DEFAULT_TORCH_THREADS if threads is None else int(threads))
    return torch.get_num_threads()


def build_module(cfg: DictConfig) -> L.LightningModule:
    """The LightningModule with its encoding and the run's speed settings; the MAE wrapped in
    torch.compile when ``compile=true``, its caches in ``paths.compile_cache``."""
    speed = Speed.from_config(cfg.get("speed"))
    extra = {"fused_optimizer": True} if speed.fused_optimizer else {}
    module = instantiate(cfg.model, encoding=instantiate(cfg.encoding), **extra)
    if cfg.get("compile"):
        cache = cfg.paths.get("compile_cache")
        if cache:  # inductor reads it when it compiles; a TORCHINDUCTOR_CACHE_DIR set by the user wins
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cache).expanduser().resolve()))
        module.model = torch.compile(module.model)
    return module


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    """What a run's final `trainer.validate` reported: its val*/ (in a tuning trial, tune*/) metrics."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val", "tune"))}


def train(cfg: DictConfig) -> RunRecord:
    """Train one run and return its record; ``results.json`` says how it ended, whatever happened."""
    with RunSession(cfg) as run:
        run.record.torch_threads = set_torch_threads(cfg.get("torch_threads"))
        run.record.tuning = tuning_record(cfg)  # a tuned study's values and where they came from
        L.seed_everything(cfg.seed, workers=True)
        datamodule = instantiate(cfg.data)
        apply_to_datamodule(Speed.from_config(cfg.get("speed")), datamodule)
        module = build_module(cfg)
        callbacks = instantiate_group(cfg.get("callbacks"))
        trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=run.make_loggers() or False, plugins=run.plugins()
        )
        run.attach(trainer, module)
        with run.fitting():
            trainer.fit(module, datamodule=datamodule, ckpt_path=run.ckpt_path)
        # The final weights' validation metrics (during fit the module logs them to the loggers only).
        trainer.validate(module, datamodule=datamodule, verbose=False)
        run.complete(callbacks, final_metrics(trainer))
    return run.record
