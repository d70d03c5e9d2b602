"""Lightning callbacks of clay-exp."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

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
        self._last_logged_step = -1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # optimizer steps so far; unchanged on accumulation-only batches
        if step % self.every_n_steps or step == self._last_logged_step or not trainer.loggers:
            return
        encoding = getattr(pl_module, "encoding", None)
        if not isinstance(encoding, SpatialEncoding):
            return
        stats = encoding.diagnostics()
        if not stats:
            return
        self._last_logged_step = step
        metrics = {f"{self.prefix}/{key}": value for key, value in stats.items()}
        # The step the module's own self.log() values get at this point, as LearningRateMonitor does,
        # so these rows line up with train/loss in metrics.csv and wandb.
        logged_step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=logged_step)
