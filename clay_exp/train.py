"""One training run from a composed Hydra config: instantiate -> fit -> validate -> results.json.

Kept apart from the root ``train.py`` (which only adds ``@hydra.main``) so tests can call `train`
with a config from Hydra's compose API, in-process.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from clay_exp.results import git_state, write_results
from clay_exp.resume import ResumeState, metrics_before, prepare_resume

log = logging.getLogger(__name__)


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that holds several named objects (callbacks, loggers)."""
    if not cfg:
        return []
    return [instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


def _find(items: list[Any], kind: type) -> Any | None:
    return next((item for item in items if isinstance(item, kind)), None)


def build_module(cfg: DictConfig) -> L.LightningModule:
    """The LightningModule with its encoding; the MAE wrapped in torch.compile when ``compile=true``."""
    module = instantiate(cfg.model, encoding=instantiate(cfg.encoding))
    if cfg.get("compile"):
        module.model = torch.compile(module.model)
    return module


def _final_metrics(
    trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule
) -> dict[str, float]:
    """Validation metrics of the final weights (the module logs them to the loggers only during fit)."""
    trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")}


def _restore_metrics(loggers: list[Logger], resume: ResumeState) -> None:
    """Put the rows logged before the checkpoint back into the CSV log (its writer starts a new file)."""
    csv_logger = _find(loggers, CSVLogger)
    if csv_logger is None:
        return
    rows = metrics_before(Path(csv_logger.log_dir) / "metrics.csv", resume.step)
    writer = csv_logger.experiment  # creating the writer removes the old file: rows are re-logged below
    for row in rows:
        step = int(row.pop("step"))
        writer.log_metrics(row, step=step)
    writer.save()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one run; always writes ``results.json`` (status completed / failed / interrupted)."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    is_rank_zero = rank_zero_only.rank == 0  # DDP: every rank runs this; one writes the record
    resume = prepare_resume(output_dir, resolved) if cfg.get("resume") else None
    results: dict[str, Any] = {
        "status": "running",
        "experiment": cfg.experiment_name,
        "encoding": cfg.encoding_name,
        "data": cfg.data_name,
        "injection": cfg.injection,
        "seed": cfg.seed,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "output_dir": str(output_dir),
        "git": git_state(Path(__file__).resolve().parent),
        "config": resolved,
    }
    if resume is not None:
        results["started_at"] = resume.previous.get("started_at", results["started_at"])
        results["resumed"] = [
            *resume.previous.get("resumed", []),
            {"checkpoint": str(resume.checkpoint), "step": resume.step, "at": datetime.now(UTC).isoformat()},
        ]
        if resume.wandb_id and "wandb" in (cfg.get("logger") or {}):
            with open_dict(cfg):  # continue the same wandb run
                cfg.logger.wandb.id = resume.wandb_id
                cfg.logger.wandb.resume = "allow"
    if is_rank_zero:
        write_results(output_dir, results)

    trainer = None
    loggers: list[Logger] = []
    try:
        L.seed_everything(cfg.seed, workers=True)
        datamodule = instantiate(cfg.data)
        module = build_module(cfg)
        callbacks: list[Callback] = instantiate_group(cfg.get("callbacks"))
        loggers = instantiate_group(cfg.get("logger"))
        if resume is not None and is_rank_zero:
            _restore_metrics(loggers, resume)
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for lg in loggers:
            lg.log_hyperparams(resolved)
        wandb_logger = _find(loggers, WandbLogger)
        if wandb_logger is not None and is_rank_zero:
            results["wandb"] = {"id": wandb_logger.experiment.id, "dir": wandb_logger.experiment.dir}
        results["params"] = module.parameter_counts()
        log.info(
            "encoding=%s %s | parameters %s",
            cfg.encoding_name,
            module.encoding.extra_repr(),
            results["params"],
        )

        ckpt_path = str(resume.checkpoint) if resume is not None else cfg.get("ckpt_path")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.interrupted:  # e.g. SIGTERM handled inside Lightning without raising
            raise KeyboardInterrupt("training was interrupted")
        final = _final_metrics(trainer, module, datamodule)

        checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        best = next((c for c in checkpoints if c.monitor), None)
        last = next((c for c in checkpoints if c.last_model_path), None)
        timer = _find(callbacks, Timer)
        best_score = getattr(best, "best_model_score", None)
        results.update(
            status="completed",
            final=final,
            best={"val/loss": float(best_score) if best_score is not None else final.get("val/loss_best")},
            steps=trainer.global_step,
            epochs=trainer.current_epoch,
            train_time_s=timer.time_elapsed("train") if timer else None,
            checkpoints={
                "last": last.last_model_path if last else None,
                "best": (best.best_model_path or None) if best else None,
            },
        )
        if results["train_time_s"] and trainer.global_step:
            results["step_time_s"] = results["train_time_s"] / trainer.global_step
        if wandb_logger is not None and is_rank_zero:
            wandb_logger.experiment.summary.update(
                {"final/val_loss": final.get("val/loss"), **results["best"]}
            )
        return results
    except BaseException as error:  # KeyboardInterrupt/SystemExit too: the record must survive
        interrupted = isinstance(error, KeyboardInterrupt | SystemExit) or (
            trainer is not None and trainer.received_sigterm
        )
        results["status"] = "interrupted" if interrupted else "failed"
        results["error"] = {
            "type": type(error).__name__,
            "message": str(error),
            "traceback": traceback.format_exc(),
        }
        if trainer is not None:
            results["steps"] = trainer.global_step
        raise
    finally:
        results["wall_time_s"] = time.perf_counter() - started
        if resume is not None:
            results["wall_time_s"] += resume.previous.get("wall_time_s") or 0.0
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if is_rank_zero:
            path = write_results(output_dir, results)
            log.info("results written to %s", path)
        if _find(loggers, WandbLogger) is not None:
            import wandb

            wandb.finish(exit_code=0 if results["status"] == "completed" else 1)
