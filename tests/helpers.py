"""Test-only pieces that configs can point at (`+callbacks.x._target_=tests.helpers.X`)."""

from __future__ import annotations

import lightning as L


class InterruptAfterSteps(L.Callback):
    """Simulates Ctrl-C between two steps, after `steps` optimizer steps (handled like a real one)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.steps:
            raise KeyboardInterrupt(f"test interrupt after {trainer.global_step} steps")


class FailAfterSteps(InterruptAfterSteps):
    """Raises an ordinary error after `steps` optimizer steps (a crash)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.steps:
            raise RuntimeError(f"test crash after {trainer.global_step} steps")


class RecordBatchIndices(L.Callback):
    """Writes the chip indices each rank trained on to `<folder>/indices_rank<r>.json`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[int] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: dict, *args: object
    ) -> None:
        self.seen += batch["index"].tolist()

    def on_train_end(self, trainer: L.Trainer, *args: object) -> None:
        import json
        from pathlib import Path

        path = Path(self.folder) / f"indices_rank{trainer.global_rank}.json"
        path.write_text(
            json.dumps({"rank": trainer.global_rank, "world_size": trainer.world_size, "seen": self.seen})
        )
