"""Does ``compile=true`` pay on the CPU? Whole runs eager vs compiled, the compiler's caches cold
and warm, and the run length from which compiling is the faster choice.

    python scripts/benchmark_compile.py                              # 192 steps of the study arm, 1 thread
    python scripts/benchmark_compile.py --steps 1024 --rounds 2      # a whole study run
    python scripts/benchmark_compile.py experiment=study_known_answer arm=none --threads 2

Each round trains the configured run (``python train.py <overrides>``, a fresh process each, as a
sweep's job would) three ways: ``eager`` (``compile=false``); ``compile cold``: ``compile=true`` with
an empty inductor cache (``paths.compile_cache`` in a new temporary folder: the first run on a
machine); ``compile warm``: the same again on the cache the cold run left (every later run, e.g. a
sweep's jobs after the first). Per way: the process's wall time, the steady step (ms per step over
``[--window-start, --steps)``, validation included, clocked by `clay_exp.profiling.StepWindow`) and
the fixed cost (wall - steps x steady step: start-up, compiling, the first slow steps). Compiling
pays from ``break-even`` steps on: (compiled fixed - eager fixed) / (eager step - compiled step).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clay_exp.benchmarking import fmt, machine, markdown_table, write_json
from clay_exp.results import RunRecord

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OVERRIDES = ["experiment=study_known_answer", "arm=hierarchical"]
WAYS = ("eager", "compile cold", "compile warm")


def train_once(args: argparse.Namespace, compiled: bool, cache: Path, folder: Path) -> dict[str, Any]:
    window = folder / "window.json"
    command = [
        sys.executable, str(ROOT / "train.py"), *args.overrides, f"compile={str(compiled).lower()}",
        f"trainer.max_steps={args.steps}", f"torch_threads={args.threads}", f"hydra.run.dir={folder}",
        f"paths.compile_cache={cache}", "trainer.enable_progress_bar=false", "logger=csv",
        "+callbacks.step_window._target_=clay_exp.profiling.StepWindow",
        f"+callbacks.step_window.start={args.window_start}",
        f"+callbacks.step_window.steps={args.steps - args.window_start}",
        f"+callbacks.step_window.out={window}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}  # the run's own cache
    env |= {"OMP_NUM_THREADS": str(args.threads), "WANDB_SILENT": "true"}
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"train.py (compile={compiled}) exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    measured = json.loads(window.read_text())
    step_s = measured["wall_s"] / measured["steps"]
    record = RunRecord.load(folder)
    return {
        "wall_s": wall,
        "step_ms": 1e3 * step_s,
        "fixed_s": wall - args.steps * step_s,
        "train_time_s": record.train_time_s,
        "val_loss": record.final.get("val/loss"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {w: [] for w in WAYS}
    with tempfile.TemporaryDirectory(prefix="clay_exp_compile_") as tmp:
        for r in range(args.rounds):
            cache = Path(tmp) / f"cache{r}"  # empty: the cold run fills it, the warm one reads it
            for way in WAYS:
                folder = Path(tmp) / f"round{r}-{way.replace(' ', '_')}"
                rounds[way].append(train_once(args, way != "eager", cache, folder))
                print(f"round {r}: {way}: {rounds[way][-1]['wall_s']:.1f} s", flush=True)
    rows = []
    for way in WAYS:
        best = min(rounds[way], key=lambda m: m["wall_s"])
        rows.append({"way": way, **best, "round_wall_s": [m["wall_s"] for m in rounds[way]]})
    eager = rows[0]
    for row in rows:
        saving_s = (eager["step_ms"] - row["step_ms"]) / 1e3
        extra_s = row["fixed_s"] - eager["fixed_s"]
        row["step_speedup"] = eager["step_ms"] / row["step_ms"]
        row["wall_speedup"] = eager["wall_s"] / row["wall_s"]
        # from how many steps on compiling is faster: never without a saving, always without an extra cost
        row["break_even_steps"] = max(0.0, extra_s / saving_s) if saving_s > 0 else math.inf
        if row is eager:
            row["break_even_steps"] = 0.0
    return {
        "machine": machine(),
        "overrides": args.overrides,
        "steps": args.steps,
        "window_start": args.window_start,
        "threads": args.threads,
        "rounds": args.rounds,
        "ways": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"\nMachine: {report['machine']['description']}; {report['threads']} torch thread(s)")
    print(
        f"Run: {' '.join(report['overrides'])}, {report['steps']} steps, "
        f"best of {report['rounds']} round(s)\n"
    )
    header = ["way", "process wall s", "x eager", "steady step ms", "x eager", "fixed s", "break-even steps"]
    header.append("val/loss")
    rows = [
        [r["way"], fmt(r["wall_s"]), fmt(r["wall_speedup"], ".2f"), fmt(r["step_ms"]),
         fmt(r["step_speedup"], ".2f"), fmt(r["fixed_s"]), fmt(r["break_even_steps"], ".0f"),
         fmt(r["val_loss"], ".6f")]
        for r in report["ways"]
    ]  # fmt: skip
    print(markdown_table(header, rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("overrides", nargs="*", default=DEFAULT_OVERRIDES, help="Hydra overrides of the run")
    parser.add_argument("--steps", type=int, default=192, help="training steps per run")
    parser.add_argument("--window-start", type=int, default=64, help="first step of the steady window")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="logs/benchmarks/compile.json")
    args = parser.parse_args(argv)
    if not 0 <= args.window_start < args.steps:
        parser.error(f"--window-start={args.window_start} must lie in [0, --steps={args.steps})")
    report = run(args)
    print_table(report)
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
