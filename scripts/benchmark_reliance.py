"""What the location-reliance evaluation adds to a training run (clay_exp/reliance.py).

Trains one run of the given config (default: the earth study's `hierarchical` arm at its budget, one
thread) and reads back, from its own files, the training time (results.json), the whole run's wall
time and the seconds the end-of-training evaluation took (``time/reliance_s`` in metrics.csv).
Prints them with the evaluation's share of the wall time and writes JSON. Time it on an idle
machine: under load the share means nothing.

    python scripts/benchmark_reliance.py [--threads 1] [--out logs/benchmarks/reliance.json] [-- overrides]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from clay_exp.benchmarking import torch_threads, write_json
from clay_exp.config import CONFIG_DIR, compose_config
from clay_exp.reliance import TIME_KEY
from clay_exp.report import METRICS_CSV
from clay_exp.results import read_results
from clay_exp.train import train

ROOT = CONFIG_DIR.parent
DEFAULT = ["experiment=study_earth", "arm=hierarchical", "seed=0"]


def run(overrides: list[str]) -> dict:
    import pandas as pd

    with tempfile.TemporaryDirectory() as folder:
        train(compose_config(["logger=csv", *overrides], folder))
        results = read_results(folder)
        frame = pd.read_csv(Path(folder) / METRICS_CSV)
    seconds = frame[TIME_KEY].dropna()
    reliance_s = float(seconds.iloc[-1]) if len(seconds) else float("nan")
    wall = float(results["wall_time_s"])
    return {
        "overrides": overrides,
        "steps": results["steps"],
        "train_time_s": results["train_time_s"],
        "wall_time_s": wall,
        "reliance_s": reliance_s,
        "reliance_share_of_wall": reliance_s / wall,
        "val/loss": results["final"].get("val/loss"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "benchmarks" / "reliance.json")
    parser.add_argument(
        "overrides", nargs="*", help=f"Hydra overrides of the run (default: {' '.join(DEFAULT)})"
    )
    args = parser.parse_args(argv)
    with torch_threads(args.threads):
        result = run(list(args.overrides) or DEFAULT)
    print(f"{'steps':>6} {'train s':>9} {'wall s':>9} {'reliance s':>11} {'share':>7}")
    print(
        f"{result['steps']:>6} {result['train_time_s']:>9.1f} {result['wall_time_s']:>9.1f} "
        f"{result['reliance_s']:>11.2f} {result['reliance_share_of_wall']:>7.1%}"
    )
    payload = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {args.threads} thread(s)",
        "torch": torch.__version__,
        **result,
    }
    print(f"\nwritten to {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
