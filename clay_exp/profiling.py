"""Where a training step's time goes: a window of steps of a real run, clocked or under torch.profiler.

`StepWindow` is a Lightning callback (added to a run with ``+callbacks.step_window._target_=...``)
that opens at the start of optimizer step ``start`` and closes at the start of step
``start + steps`` (or when training ends), so the window holds whole steps with everything a run
does between them: data, forward, backward, optimizer, Lightning's hooks and logging, and the
validation and checkpoints of the epochs it spans. It clocks each step's phases from Lightning's
hooks (`PHASES`). With ``profile=true`` the window runs under ``torch.profiler``: `op_table` ranks
the ops by self CPU time, and `op_share` says how much of the window's wall time the ops account
for at all (the rest is Python between ops: loops, hooks, logging). Read ``Optimizer.step#...``'s
self time with care: under Lightning the forward and backward run inside the optimizer's step (its
closure), so the Python time between their ops is charged to it. `scripts/profile_step.py` is the
command line.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.profiler import ProfilerActivity, profile

from clay_exp.benchmarking import write_json

#: A step's phases, as Lightning's hooks delimit them: ``forward`` from the batch's start to the
#: backward (zero_grad, training_step, its logging), ``backward``, ``optimizer`` from the end of the
#: backward to the batch's end (clipping, the optimizer step, batch-end hooks), ``validation`` (the
#: validation loops inside the window) and ``between`` the rest: fetching the next batch, the
#: scheduler, loggers, progress bar, checkpoints.
PHASES = ("forward", "backward", "optimizer", "validation", "between")

#: The last window measured in this process (the script reads it after `train` returns).
LAST_WINDOW: dict[str, Any] = {}


class StepWindow(Callback):
    """Clock (and optionally profile) optimizer steps ``[start, start + steps)`` of a run.

    Results go to `LAST_WINDOW`: ``wall_s``, ``steps`` (optimizer steps inside the window),
    ``phases_s`` (seconds per `PHASES` entry, summing to ``wall_s``) and, when profiling,
    ``profile`` (the ``torch.profiler.profile`` object, already stopped); with `out`, the same
    numbers (not the profile) are also written to that JSON file, for a run in another process.
    """

    def __init__(
        self, start: int = 64, steps: int = 64, profile: bool = False, out: str | None = None
    ) -> None:
        if int(start) < 0 or int(steps) < 1:
            raise ValueError(f"start={start!r} must be >= 0 and steps={steps!r} >= 1")
        self.start, self.steps, self.profile = int(start), int(steps), bool(profile)
        self.out = out
        self._opened_at: float | None = None
        self._opened_step = 0
        self._profiler: profile | None = None
        self._phases = dict.fromkeys(PHASES, 0.0)
        self._phase: str | None = None
        self._phase_started = 0.0
        LAST_WINDOW.clear()

    # -- phases: one open at a time -----------------------------------------------------------------
    def _enter(self, phase: str | None) -> None:
        now = time.perf_counter()
        if self._phase is not None:
            self._phases[self._phase] += now - self._phase_started
        self._phase, self._phase_started = phase, now

    def _open(self, step: int) -> None:
        if self.profile:
            self._profiler = profile(activities=[ProfilerActivity.CPU])
            self._profiler.__enter__()
        self._opened_step = step
        self._opened_at = time.perf_counter()

    def _close(self, step: int) -> None:
        if self._opened_at is None:
            return
        self._enter(None)
        wall = time.perf_counter() - self._opened_at
        self._opened_at = None
        if self._profiler is not None:
            self._profiler.__exit__(None, None, None)
        phases = dict(self._phases)
        phases["between"] = wall - sum(v for k, v in phases.items() if k != "between")
        LAST_WINDOW.update(
            wall_s=wall, steps=step - self._opened_step, phases_s=phases, profile=self._profiler
        )
        self._profiler = None
        if self.out:
            write_json(self.out, {k: v for k, v in LAST_WINDOW.items() if k != "profile"})

    def _in_window(self, phase: str) -> None:
        if self._opened_at is not None:
            self._enter(phase)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self._opened_at is None and step == self.start and "wall_s" not in LAST_WINDOW:
            self._open(step)
        elif self._opened_at is not None and step >= self.start + self.steps:
            self._close(step)
        self._in_window("forward")

    def on_before_backward(self, *args: Any) -> None:
        self._in_window("backward")

    def on_after_backward(self, *args: Any) -> None:
        self._in_window("optimizer")

    def on_train_batch_end(self, *args: Any) -> None:
        self._in_window("between")

    def on_validation_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._in_window("validation")

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._in_window("between")

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._close(trainer.global_step)


def op_table(prof: profile, steps: int, top: int = 20) -> list[dict[str, Any]]:
    """The `top` ops by self CPU time: ms per step, share of all ops' self time, calls per step."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "share_of_ops": e.self_cpu_time_total / total_us,
            "calls_per_step": e.count / steps,
        }
        for e in events[:top]
    ]


def op_share(prof: profile, wall_s: float) -> float:
    """All ops' self CPU time over the window's wall time: 1 - this is Python between ops (one
    thread: torch's CPU ops run on the calling thread, backward included)."""
    return sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6 / wall_s
