"""The bookkeeping around one training run: its folder's lock, its record, signals and exit code.

`RunSession` is what makes a run safe to leave alone on a cluster:

* **One writer per folder.** An exclusive lock on ``<run>/.lock`` (`clay_exp.run_lock`: the kernel
  drops it when the process dies, so a lock is never stale) is taken before anything is written; a
  second ``train.py`` on the same folder — including ``resume=`` of a run that is still training —
  is refused with the folder and the owner's pid, host and start time.
* **A refused run writes nothing.** The owner's name in ``.lock``, Hydra's ``.hydra/`` files (which
  Hydra itself no longer writes: ``hydra.output_subdir=null``), the record, and the clean-up of a
  killed save's temp files all come after the lock and the resume checks.
* **A final status on every exit path** after ``results.json`` is first written: ``completed``,
  ``failed`` (the innermost error, the step) or ``interrupted`` (the signal); on a full disk the
  final record goes into space reserved at the start (``.results.json.reserve``). SIGTERM is caught from the
  start, so one that arrives while the data or model is still being built is recorded too.
* **Honest exit codes** for schedulers: interrupted → ``SystemExit(128 + signal)`` (143 for SIGTERM,
  130 for Ctrl-C), failed → the error propagates (Hydra exits 1), completed → 0.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from clay_exp.files import atomic_write, remove_temporary_files
from clay_exp.module import NonFiniteLossError
from clay_exp.results import RunRecord, error_info, git_state, record_reserve
from clay_exp.resume import (
    CHECKPOINT_DIR,
    AtomicCheckpointIO,
    ResumeState,
    prepare_resume,
    restore_metrics,
    safe_name,
)
from clay_exp.run_lock import RunLock, utc_now

log = logging.getLogger(__name__)

#: Hydra's job files (config.yaml, hydra.yaml, overrides.yaml), written by the session after its checks.
HYDRA_SUBDIR = ".hydra"


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the run (a KeyboardInterrupt, so Lightning shuts down as for Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def instantiate_group(cfg: DictConfig | None, **kwargs_by_target: dict[str, Any]) -> list[Any]:
    """Instantiate every entry of a config group that holds several named objects (callbacks,
    loggers); `kwargs_by_target` adds arguments to the entries whose ``_target_`` ends so."""
    if not cfg:
        return []
    out = []
    for node in cfg.values():
        if isinstance(node, DictConfig) and "_target_" in node:
            extra = next((kw for t, kw in kwargs_by_target.items() if str(node._target_).endswith(t)), {})
            out.append(instantiate(node, **extra))
    return out


class RunSession:
    """``with RunSession(cfg) as run:`` — lock the folder, prepare a resume, write the record; on
    the way out, whatever happened, write the final record, release the lock and end wandb."""

    def __init__(self, cfg: DictConfig) -> None:
        safe_name(cfg.experiment_name)  # it names a folder under logs/ (also checked by Hydra's run.dir)
        self.cfg = cfg
        self.output_dir = Path(cfg.paths.output_dir)
        self.is_rank_zero = rank_zero_only.rank == 0  # DDP: every rank runs; one owns the folder
        self.config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        self.record = RunRecord(
            status="running",
            experiment=cfg.experiment_name,
            encoding=cfg.encoding_name,
            data=cfg.data_name,
            injection=cfg.injection,
            seed=cfg.seed,
            output_dir=str(self.output_dir),
            started_at=utc_now(),
            git=git_state(Path(__file__).resolve().parent),
            config=self.config,
        )
        self.resume: ResumeState | None = None
        self.lock = RunLock(self.output_dir)
        self.reserve = record_reserve(self.output_dir)
        self._checks_passed = False
        self.signal: int | None = None
        self._in_fit = False
        self._previous_handlers: dict[int, Any] = {}
        self._started = time.perf_counter()
        self.trainer: L.Trainer | None = None
        self.loggers: list[Logger] = []

    # -- entering: nothing is written before the folder is ours and a resume is known to be sound ----
    def __enter__(self) -> RunSession:
        if self.is_rank_zero:
            self.lock.acquire()
        try:
            if self.cfg.get("resume"):
                force = bool(self.cfg.get("resume_force"))
                self.resume = prepare_resume(self.output_dir, self.config, force=force)
                self.record.started_at = self.resume.previous.started_at or self.record.started_at
                self.record.resumed = [*self.resume.previous.resumed, self.resume.entry(utc_now())]
                if self.resume.schedule:
                    log.info(
                        "resume: the learning-rate schedule is the run's own (%d steps); steps past "
                        "it hold its final rate",
                        self.resume.schedule["total_steps"],
                    )
            self._install_signal_handlers()
            self._checks_passed = True
            if self.is_rank_zero:  # from here on the folder is written
                self.lock.write_owner()
                self._remove_leftovers()
                self._write_hydra_files()
                self.reserve.create()
            self._write()
        except BaseException:
            if self.is_rank_zero and self._checks_passed:  # a refused run leaves the folder as it was
                self.reserve.release()
            self.lock.release()
            self._restore_signal_handlers()
            raise
        return self

    def plugins(self) -> list[Any]:
        """The Trainer's plugins: those configured (``trainer.plugins``) and, unless one of them
        already handles checkpoint files, `AtomicCheckpointIO` (no save can damage ``last.ckpt``)."""
        configured = self.cfg.trainer.get("plugins")
        built = instantiate(configured) if configured is not None else []
        plugins = list(built) if isinstance(built, list | tuple | ListConfig) else [built]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        return plugins

    @property
    def ckpt_path(self) -> str | None:
        """The checkpoint `Trainer.fit` starts from: the run's own when resuming, else ``ckpt_path``."""
        return str(self.resume.checkpoint) if self.resume is not None else self.cfg.get("ckpt_path")

    def make_loggers(self, concurrent: bool = False) -> list[Logger]:
        """The configured loggers; a resumed run reopens its wandb run and keeps its earlier CSV rows.
        `concurrent`: this process holds other runs' wandb runs open at the same time (a seed group,
        clay_exp.seed_group), so this one is a new wandb run of its own (``reinit="create_new"``)."""
        wandb_id = self.resume.wandb_id if self.resume is not None else None
        wandb_kwargs: dict[str, Any] = {"id": wandb_id, "resume": "allow"} if wandb_id else {}
        if concurrent:
            wandb_kwargs["reinit"] = "create_new"
        self.loggers = instantiate_group(self.cfg.get("logger"), WandbLogger=wandb_kwargs)
        if self.resume is not None and self.is_rank_zero:
            restore_metrics(self.loggers, self.resume.step)
        for lg in self.loggers:
            lg.log_hyperparams(self.config)
        return self.loggers

    def attach(self, trainer: L.Trainer, module: Any) -> None:
        """Record what was built: the trainer (for the step counter), parameter counts, the wandb run."""
        self.trainer = trainer
        self.record.params = module.parameter_counts()
        wandb_logger = _find(self.loggers, WandbLogger)
        if wandb_logger is not None and self.is_rank_zero:
            self.record.wandb = {"id": wandb_logger.experiment.id, "dir": wandb_logger.experiment.dir}
        log.info(
            "encoding=%s %s | parameters %s",
            self.record.encoding,
            module.encoding.extra_repr(),
            self.record.params,
        )

    @contextmanager
    def fitting(self) -> Iterator[None]:
        """Around `Trainer.fit`: a SIGTERM there is left to Lightning, which stops at the step's end
        (checkpoints and logs consistent) and raises; a stop it handled silently is raised here."""
        self._in_fit = True
        try:
            yield
        finally:
            self._in_fit = False
        if self.trainer is not None and (self.trainer.interrupted or self.trainer.received_sigterm):
            raise RunInterrupted(self.signal or signal.SIGTERM)

    def complete(self, callbacks: list[Callback], final: dict[str, float]) -> None:
        """The run reached its budget: final metrics (which must be finite), best epoch, checkpoints."""
        trainer = self.trainer
        assert trainer is not None, "attach(trainer, module) first"
        checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        best_checkpoint = next((c for c in checkpoints if c.monitor), None)
        last_checkpoint = next((c for c in checkpoints if c.last_model_path), None)
        timer = _find(callbacks, Timer)
        best_score = getattr(best_checkpoint, "best_model_score", None)
        # The selecting metric: val/loss, or tune/loss in a tuning trial (stage=tune).
        selector = best_checkpoint.monitor if best_checkpoint is not None else "val/loss"
        best = {selector: float(best_score) if best_score is not None else final.get(f"{selector}_best")}
        # Other validation sets (e.g. val_heldout): their loss at the epoch of the best val/loss.
        best |= {
            key.removesuffix("_best"): value
            for key, value in final.items()
            if key.endswith("/loss_best") and key != f"{selector}_best"
        }
        self.complete_values(
            final,
            best=best,
            steps=trainer.global_step,
            epochs=trainer.current_epoch,
            train_time_s=timer.time_elapsed("train") if timer else None,
            checkpoints={
                "last": last_checkpoint.last_model_path if last_checkpoint else None,
                "best": (best_checkpoint.best_model_path or None) if best_checkpoint else None,
            },
        )

    def complete_values(
        self,
        final: dict[str, float],
        best: dict[str, float | None],
        steps: int,
        epochs: int,
        train_time_s: float | None,
        checkpoints: dict[str, str | None],
    ) -> None:
        """Record a completed run from its numbers (`complete` reads them off one Trainer; a seed of
        a seed group, clay_exp.seed_group, off the group's)."""
        bad = {k: v for k, v in final.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLossError(f"non-finite validation metrics after training: {bad}")
        r = self.record
        r.final, r.best, r.steps, r.epochs = final, best, steps, epochs
        r.train_time_s = train_time_s
        r.step_time_s = r.train_time_s / steps if r.train_time_s and steps else None
        r.checkpoints = checkpoints
        r.status = "completed"
        wandb_logger = _find(self.loggers, WandbLogger)
        if wandb_logger is not None and self.is_rank_zero:
            wandb_logger.experiment.summary.update(wandb_summary(r))

    # -- leaving: every path writes a final status ----------------------------------------------------
    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> bool:
        r = self.record
        if error is not None:
            signum = error.signum if isinstance(error, RunInterrupted) else self.signal
            if isinstance(error, KeyboardInterrupt) and signum is None:
                signum = signal.SIGINT
            interrupted = signum is not None or isinstance(error, KeyboardInterrupt | SystemExit)
            r.status = "interrupted" if interrupted else "failed"
            r.error = error_info(error)
            if signum is not None:
                r.error["signal"] = signal.Signals(signum).name
            r.exit_code = 128 + int(signum) if signum is not None else 1
        elif r.status != "completed":  # left the block without complete(): a bug, not a success
            r.status, r.exit_code = "failed", 1
            r.error = {"type": "RuntimeError", "message": "the run ended without completing", "cause": ""}
        else:
            r.exit_code = 0
        if self.trainer is not None and r.status != "completed":
            r.steps = self.trainer.global_step
        r.wall_time_s = time.perf_counter() - self._started
        if self.resume is not None:
            r.wall_time_s += self.resume.previous.wall_time_s or 0.0
        r.finished_at = utc_now()
        try:
            if self.is_rank_zero:
                try:
                    log.info("results written to %s", self._write())
                finally:
                    self.reserve.release()  # its job is done (or could not be done): no 1 MiB left behind
            wandb_logger = _find(self.loggers, WandbLogger)
            wandb_run = getattr(wandb_logger, "_experiment", None)  # None: never started
            if wandb_run is not None:  # this run's own (a seed group holds several open at once)
                wandb_run.finish(exit_code=r.exit_code or 0)
        finally:
            self._restore_signal_handlers()
            self.lock.release()
        if r.status == "interrupted":
            raise SystemExit(r.exit_code) from error
        return False  # a failure propagates as itself

    # -- pieces ---------------------------------------------------------------------------------------
    def _write(self) -> Path | None:
        return self.record.save(self.output_dir, reserve=self.reserve) if self.is_rank_zero else None

    def _remove_leftovers(self) -> None:
        """Temp files of a save killed mid-write (``<name>.tmp-<pid>-<random>``; the lock says no
        other process is writing here) in the run folder and the checkpoint folders."""
        folders = {self.output_dir, self.output_dir / CHECKPOINT_DIR}
        for node in (self.cfg.get("callbacks") or {}).values():
            if isinstance(node, DictConfig) and node.get("dirpath"):
                folders.add(Path(node.dirpath))
        for folder in folders:
            for path in remove_temporary_files(folder) if folder.is_dir() else []:
                log.info("removed %s, left by a save that was killed mid-write", path)

    def _write_hydra_files(self) -> None:
        """Hydra's job files, as Hydra writes them (unresolved), now that the run goes ahead:
        configs/hydra sets ``hydra.output_subdir: null`` so that Hydra does not write them before
        the lock and the resume checks (a refused run left its settings in the folder)."""
        if not HydraConfig.initialized():
            return
        hydra_cfg = HydraConfig.instance().cfg
        runtime_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir")
        if OmegaConf.select(hydra_cfg, "hydra.output_subdir") is not None or runtime_dir is None:
            return  # Hydra wrote them itself (an explicit hydra.output_subdir)
        if Path(runtime_dir).resolve() != self.output_dir.resolve():
            return  # the current Hydra config belongs to another run (composed in-process)
        write_hydra_files(self.output_dir, self.cfg, hydra_cfg, hydra_cfg.hydra.overrides.task)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        if signum == signal.SIGTERM and self._in_fit:
            return  # Lightning's own handler runs beside this one and stops the loop cleanly
        raise RunInterrupted(signum)

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread (e.g. a launcher's worker thread): leave them be
                return

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}


def write_hydra_files(folder: Path, config: DictConfig, hydra_cfg: DictConfig, overrides: Any) -> None:
    """Hydra's job files in ``<folder>/.hydra/`` (the run's config, Hydra's own, the task overrides),
    unresolved, as Hydra writes them."""
    files = {
        "config.yaml": config,
        "hydra.yaml": hydra_cfg,
        "overrides.yaml": OmegaConf.create(list(overrides)),
    }
    for name, node in files.items():
        atomic_write(folder / HYDRA_SUBDIR / name, OmegaConf.to_yaml(node).encode())


def _find(items: list[Any], kind: type) -> Any | None:
    return next((item for item in items if isinstance(item, kind)), None)


def wandb_summary(record: RunRecord) -> dict[str, float]:
    """The numbers a finished run shows (and sorts by) in the wandb runs table: final and best val
    losses (``final/val_loss``, ``final/val_heldout_loss`` where logged, ``best/val_loss``), the
    encoding's parameter count and the time per training step."""
    summary = {
        f"final/{key.replace('/', '_')}": value
        for key, value in record.final.items()
        if not key.endswith("_best")
    }
    summary["best/val_loss"] = record.best.get("val/loss")
    summary["params/encoding"] = record.params.get("encoding")
    summary["time/step_s"] = record.step_time_s
    return {key: value for key, value in summary.items() if value is not None}
