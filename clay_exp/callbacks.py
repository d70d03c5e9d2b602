"""Lightning callbacks of clay-exp."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from clay_exp.encodings.base import SpatialEncoding


class EncodingDiagnostics(Callback):
    """Logs the spatial encoding's `diagnostics()` every `every_n_steps` optimizer steps, as ``enc/<key>``.

    For the hierarchical encoding that is, per level, the mean norm and the mean update of the rows
    the step touched (``enc/z05/row_norm``, ``enc/z05/update_norm``): a flat update norm at z0 shows a
    global level that does not learn. Encodings without diagnostics log nothing. Values are read
    (one host sync) only on the steps that log.
    """

    def __init__(self, every_n_steps: int = 10, prefix: str = "enc") -> None:
        if int(every_n_steps) != every_n_steps or every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps!r} must be an integer >= 1")
        self.every_n_steps = int(every_n_steps)
        self.prefix = prefix
        self._steps_before_batch = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._steps_before_batch = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # optimizer steps so far
        stepped = step > self._steps_before_batch  # False on an accumulation-only batch
        if not stepped or step % self.every_n_steps or not trainer.loggers:
            return
        encoding = getattr(pl_module, "encoding", None)
        if not isinstance(encoding, SpatialEncoding):
            return
        stats = encoding.diagnostics()
        if not stats:
            return
        metrics = {f"{self.prefix}/{key}": value for key, value in stats.items()}
        # The step the module's own self.log() values of this batch are logged at (the optimizer
        # steps before it), so these rows line up with train/loss in metrics.csv and wandb.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=self._steps_before_batch)


class LastCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` whose ``last.ckpt`` is also written when training ends between two of its
    every-N-step saves (Lightning's writes it at the end only if it never saved one), so that
    ``resume=<run> trainer.max_steps=<more>`` continues a finished run from its very last step
    instead of silently redoing the steps after the last periodic save."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
