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


class PoisonBatch(L.Callback):
    """Puts a NaN pixel into the training batch of step `step` (bad data arriving mid-run)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: dict, *args: object
    ) -> None:
        if trainer.global_step == self.step:
            batch["image"][0, 0, 0, 0] = float("nan")


class SlowSteps(L.Callback):
    """Sleeps `delay` s after each step and touches `marker` once `after` steps are done, so another
    process can act on a run that is certainly training (and has a checkpoint)."""

    def __init__(self, marker: str, delay: float = 0.2, after: int = 3) -> None:
        self.marker, self.delay, self.after = marker, delay, after

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        import time
        from pathlib import Path

        if trainer.global_step >= self.after:
            Path(self.marker).touch()
        time.sleep(self.delay)


class SlowInit(L.Callback):
    """A callback whose construction (during the run's set-up, after results.json is first written)
    touches `marker` and then takes `seconds`."""

    def __init__(self, marker: str, seconds: float = 60.0) -> None:
        import time
        from pathlib import Path

        Path(marker).touch()
        time.sleep(seconds)


class PickledCode:
    """Unpickling this creates `marker`: stands for code planted in a checkpoint."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))
