"""What the benchmark scripts share: timing, interleaved rounds, the training-step loop, reporting.

The scripts under ``scripts/benchmark*.py`` are thin command lines over this module; each measures
its own thing (encodings in a training step, encodings alone, the hierarchical tables, worlds) the
same way:

* `time_calls` / `wall_and_cpu_ms`: repeated calls after untimed warm-up, the device synchronised
  around each, on an injectable clock (tests pass a fake one; no test depends on the machine's speed).
* `interleaved_rounds` + `best_of_rounds`: every variant measured once per round, round after round,
  so a burst of load on a shared machine lands on all variants alike; the best round counts and the
  spread between rounds says how much of a difference is noise.
* `train_steps`: the plain PyTorch training step (forward, backward, AdamW step) the scripts time,
  on batches generated once (`train_batches`); `world_throughput`: chips per second of a world.
* `step_flops`, `matmul_ms` / `matmul_gflops`: how close a training step runs to the machine's limit:
  the step's FLOPs (forward + backward, counted by `torch.utils.flop_counter.FlopCounterMode`) per
  second, against a float32 matmul timed the same way on the same threads.
* `machine`, `markdown_table`, `fmt`, `write_json`, `torch_threads`: describing the machine, printing
  tables, writing the JSON, and setting torch's thread count only for the duration of a benchmark.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.utils import instantiate
from torch import nn

from clay_exp.config import compose_config
from clay_exp.optim import build_optimizer

#: A clock: seconds as a float (time.perf_counter, time.process_time, or a test's fake).
Clock = Callable[[], float]
T = TypeVar("T")


# -- devices, threads, the machine ----------------------------------------------------------------
def sync(device: torch.device | None) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing on the CPU."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on `device` (other values, e.g. TorchGeo's CRS lists, as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with `threads` torch CPU threads (None: leave as is); restore the count after.

    Yields the count in effect. A benchmark's ``main`` may run inside another program (the tests),
    which must not be left with a different thread count, even when the benchmark fails.
    """
    before = torch.get_num_threads()
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads!r} must be >= 1 (or None for torch's default)")
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )


def machine() -> dict[str, Any]:
    """Where the numbers were measured: versions, CPU, torch threads now, load, GPU (if any)."""
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": threads,  # torch's CPU threads (the name older JSON files use)
        "device": gpu or "cpu",
        "description": f"{os.cpu_count()}-core {platform.machine()} CPU ({_cpu_model()}), torch "
        f"{torch.__version__}, " + (f"GPU {gpu}" if gpu else "no GPU"),
        "torch_threads": threads,
        "load_average": list(os.getloadavg()),
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on a CUDA device, else the process's peak resident set (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reason(error: BaseException) -> str:
    """The innermost error's type and first line (Hydra wraps an encoding's or world's own message)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]


# -- timing -----------------------------------------------------------------------------------------
def time_calls(
    fn: Callable[[], object],
    repeats: int,
    warmup: int = 0,
    device: torch.device | None = None,
    clock: Clock = time.perf_counter,
) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        started = clock()
        fn()
        sync(device)
        times.append(clock() - started)
    return times


def wall_and_cpu_ms(
    fn: Callable[[], object],
    repeats: int,
    warmup: int = 3,
    wall: Clock = time.perf_counter,
    cpu: Clock = time.process_time,
) -> dict[str, float]:
    """Median wall-clock and CPU milliseconds of `fn` over `repeats` calls (after `warmup`)."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = wall(), cpu()
        fn()
        walls.append(wall() - w)
        cpus.append(cpu() - c)
    return {"wall_ms": 1e3 * statistics.median(walls), "cpu_ms": 1e3 * statistics.median(cpus)}


def summary(times_ms: Sequence[float]) -> dict[str, float]:
    """Best and median of repeated timings (the best is the one least disturbed by other jobs)."""
    return {"best": min(times_ms), "median": statistics.median(times_ms)}


def interleaved_rounds(measures: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Each variant's measurement in every round: round r calls every measure once, in order.

    Interleaving (a, b, c, a, b, c, ...) rather than timing each variant's rounds in a row keeps a
    burst of load on a shared machine from landing on one variant's numbers only.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be >= 1")
    results: dict[str, list[T]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            results[name].append(measure())
    return results


def best_of_rounds(round_values: Sequence[float]) -> tuple[float, float]:
    """(best, spread): the smallest of the rounds' values, and how far the largest lies above it
    (``max / best - 1``): differences between variants below the spread are noise."""
    best = min(round_values)
    return best, max(round_values) / best - 1


# -- training steps and data ------------------------------------------------------------------------
def make_optimizer(module: nn.Module) -> torch.optim.Optimizer:
    """The module's optimizer over its own parameter groups (the encoding's included, with their
    learning-rate scales and step hooks: `clay_exp.optim.build_optimizer`, as in training).

    The module's ``optimizer_factory`` (``model.optimizer``) when it has one, else AdamW.
    """
    factory = getattr(module, "optimizer_factory", torch.optim.AdamW)
    return build_optimizer(factory, module.param_groups(), getattr(module, "encoding", None))


def train_steps(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[dict[str, Any]],
    device: torch.device,
    warmup: int,
    *,
    whole_steps: bool = False,
    clock: Clock = time.perf_counter,
) -> list[float]:
    """Seconds per plain PyTorch training step (forward, backward, optimizer step), after `warmup`.

    ``whole_steps=False``: the step alone, on batches already made. ``True``: from one step's start
    to the next's, so fetching the batch from `batches` (e.g. a DataLoader) counts too, as it does
    in the steps of ``Trainer.fit``.
    """
    starts, times = [], []
    for i, batch in enumerate(batches):
        sync(device)
        started = clock()
        starts.append(started)
        loss = module(to_device(batch, device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not whole_steps:
            sync(device)
            if i >= warmup:
                times.append(clock() - started)
    if not whole_steps:
        return times
    sync(device)
    starts.append(clock())
    return [b - a for a, b in zip(starts[warmup:], starts[warmup + 1 :], strict=False)]


def train_batches(cfg: Any, count: int) -> list[dict[str, Any]]:
    """The first `count` training batches of the config's world (generated once, reused in rounds)."""
    dm = instantiate(cfg.data)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    return [next(it) for _ in range(count)]


def world_throughput(
    overrides: Sequence[str], batches: int, batch_size: int = 64, clock: Clock = time.perf_counter
) -> dict[str, float]:
    """Set-up time and chips per second of a world's training DataLoader, read in this process."""
    size = [f"data.batch_size={batch_size}", f"data.train_size={batch_size * (batches + 1)}"]
    cfg = compose_config(["logger=csv", *overrides, *size], "/tmp/clay_exp_benchmark")
    started = clock()
    dm = instantiate(cfg.data)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)  # start-up (file opening, caches)
    setup_s = clock() - started
    started = clock()
    chips = sum(next(it)["image"].shape[0] for _ in range(batches))
    elapsed = clock() - started
    return {"setup_s": setup_s, "samples_per_s": chips / elapsed, "ms_per_batch": 1e3 * elapsed / batches}


# -- FLOPs and the machine's limit ------------------------------------------------------------------
def step_flops(step: Callable[[], torch.Tensor]) -> int:
    """FLOPs of one forward + backward: `step()` returns the loss, which is back-propagated.

    Counted by `torch.utils.flop_counter.FlopCounterMode`: matrix products, convolutions and
    attention (2 FLOPs per multiply-add), not elementwise ops, normalisations or the optimizer; so
    achieved GFLOP/s against a matmul's rate is how much of the step runs at the machine's dense-math
    limit. Gradients the call leaves behind are for the caller to clear.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step().backward()
    return int(counter.get_total_flops())


def matmul_ms(
    size: int = 1024, repeats: int = 5, device: torch.device | None = None, clock: Clock = time.perf_counter
) -> float:
    """Median milliseconds of a `size`² float32 matmul on the current threads (after one warm-up)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    return 1e3 * statistics.median(time_calls(lambda: a @ b, repeats, warmup=1, device=device, clock=clock))


def matmul_gflops(size: int, ms: float) -> float:
    """GFLOP/s of a `size`² matmul (2·size³ FLOPs) that took `ms` milliseconds."""
    return 2 * size**3 / (ms / 1e3) / 1e9


# -- reporting --------------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".1f") -> str:
    """A table cell: ``-`` for None, yes/NO for booleans, floats with `spec`, the rest as str."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec) if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table; ValueError for a row whose cell count differs from the header's."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row {list(row)} has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write `payload` as indented JSON to `path` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
