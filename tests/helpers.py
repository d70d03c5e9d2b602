"""What several test modules share (no test module imports another), and test-only pieces that
configs can point at (`+callbacks.x._target_=tests.helpers.X`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import pytest

if TYPE_CHECKING:  # kept light: training runs import this module for its callbacks
    from clay_exp.encodings.base import SpatialEncoding

#: The repository root (subprocess tests run `train.py` and the scripts from here).
ROOT = Path(__file__).resolve().parent.parent
#: Overrides that make a training run take seconds: small batches, a one-block MAE, no bars.
TINY = [
    "data.batch_size=16",
    "data.train_size=64",
    "data.val_size=32",
    "model.backbone.embed_dim=32",
    "model.backbone.depth=1",
    "model.backbone.decoder_embed_dim=32",
    "model.backbone.decoder_depth=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def scenes_root(names: tuple[str, ...] | None = None, root: Path = ROOT / "data" / "scenes") -> Path:
    """``<repo>/data/scenes`` with the real scenes' files (`make test` fetches them first). Missing files
    fail the test saying how to fetch them; with CLAY_EXP_SKIP_SCENES=1 the test skips instead."""
    import os

    from clay_exp.data.scenes.files import SKIP_ENV, ScenesMissingError, require_scenes

    try:
        return require_scenes(root, names)
    except ScenesMissingError as error:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{SKIP_ENV}=1: {error}")
        pytest.fail(f"{error} (or set {SKIP_ENV}=1 to skip the tests on real scenes)")


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV log (`<run_dir>/csv/metrics.csv`)."""
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    """The logged values of metric `key`, in order (rows without it skipped)."""
    return [float(r[key]) for r in rows if r.get(key)]


def build_or_skip(name: str) -> SpatialEncoding:
    """Encoding `name` composed as a run would (a YAML may use ${seed}); the test is skipped when its
    class declares an optional package that is not installed, or batch keys beyond lat/lon (tested
    with its world): `clay_exp.catalog.unavailable_reason`."""
    from clay_exp.catalog import build_encoding, unavailable_reason

    why = unavailable_reason(name)
    if why:
        pytest.skip(f"{name}: {why}")
    return build_encoding(name)


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


def run_script(script: str, *args: str, timeout: float = 600) -> str:
    """Run ``python scripts/<script> <args>`` from the repository root, as the README does, on one
    thread; fail with its stderr when it exits non-zero; return its stdout."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout


def small_mae(**kwargs):
    """A `MaskedAutoencoderViT` small enough for unit tests (16x16x3 chips, width 32); kwargs override."""
    from clay_exp.models.mae import MaskedAutoencoderViT

    args = dict(
        img_size=16,
        patch_size=4,
        in_chans=3,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    return MaskedAutoencoderViT(**(args | kwargs))


def run_script_in_process(script: str, *args: str, capsys) -> str:
    """Like :func:`run_script`, in this process: ``main(args)`` of ``scripts/<script>``, its stdout.
    A fresh Python importing torch and Lightning costs ~5 s a test, which a test of what a script
    computes and writes does not need. Torch's thread count is restored, as the scripts set their own."""
    import torch

    threads = torch.get_num_threads()
    capsys.readouterr()  # what the test printed before is not the script's
    try:
        load_script(script.removesuffix(".py")).main(list(args))
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def load_script(name: str):
    """``scripts/<name>.py`` as a module (its command line's ``main``), without running it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_cli", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _file_name(fd: int) -> str:
    import os

    return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))


class PauseMidSave(L.Callback):
    """Freezes the process in the middle of writing its `nth` ``last.ckpt`` (half the bytes written
    and flushed, `marker` touched, then a long sleep) so that a test can ``kill -9`` it right there.
    Constructing it replaces the write seam of `clay_exp.files` in the training process."""

    def __init__(self, marker: str, nth: int = 2) -> None:
        import os
        import time
        from pathlib import Path

        from clay_exp import files

        real_write, saves = files.write_bytes, [0]

        def write_bytes(fd: int, data) -> None:
            if _file_name(fd).startswith("last.ckpt.tmp-"):
                saves[0] += 1
                if saves[0] == nth:
                    view = memoryview(data).cast("B")
                    real_write(fd, view[: len(view) // 2])
                    os.fsync(fd)
                    Path(marker).touch()
                    time.sleep(600)
            real_write(fd, data)

        files.write_bytes = write_bytes


class FullDisk:
    """A disk that fills up, through the two seams of `clay_exp.files` (no small filesystem can be
    mounted in CI). Until it is full, writes go through. Once full (`fill_now`, or the `nth` write
    of a file whose name starts with `prefix` given to `fill_on`), a write may still take `free`
    new bytes in all and then raises ENOSPC, as a real disk does, leaving the partial file behind;
    writes into blocks a file already holds (space allocated before) succeed; allocations fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, free: int = 1000) -> None:
        from clay_exp import files

        self.full, self.free, self.failures = False, free, 0
        self._trigger: tuple[str, int] | None = None
        self._seen = 0
        self._write, self._allocate = files.write_bytes, files.allocate
        monkeypatch.setattr(files, "write_bytes", self.write_bytes)
        monkeypatch.setattr(files, "allocate", self.allocate)

    def fill_on(self, prefix: str, nth: int = 1) -> FullDisk:
        self._trigger = (prefix, nth)
        return self

    def fill_now(self) -> FullDisk:
        self.full = True
        return self

    def _no_space(self) -> OSError:
        import errno
        import os

        self.failures += 1
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_bytes(self, fd: int, data) -> None:
        import os

        if self._trigger and _file_name(fd).startswith(self._trigger[0]):
            self._seen += 1
            self.full = self.full or self._seen >= self._trigger[1]
        if not self.full:
            return self._write(fd, data)
        view = memoryview(data).cast("B")
        allocated = os.fstat(fd).st_blocks * 512
        in_place = max(0, allocated - os.lseek(fd, 0, os.SEEK_CUR))
        fits = min(len(view), in_place + self.free)
        self._write(fd, view[:fits])
        self.free -= max(0, fits - in_place)
        if fits < len(view):
            raise self._no_space()

    def allocate(self, fd: int, size: int) -> None:
        if self.full:
            raise self._no_space()
        self._allocate(fd, size)
