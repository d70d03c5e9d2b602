"""Location probe: ``python scripts/probe.py [--encodings ...] [--task land|zone|both] [--seeds ...]``.

Fits each encoding alone (no images) with the same small MLP head to predict the earth world's
land/sea flag and Köppen–Geiger zone from location; writes comparison.md (also printed),
comparison.csv, runs.csv, final_loss.png and probe.json into logs/probe/<time>/ (or ``--out``).
The logic lives in the package clay_exp.probe; this is only its command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from clay_exp.data.splits import SPLIT_CHOICES
from clay_exp.probe import (
    N_TEST,
    N_TRAIN,
    TASK_CHOICES,
    FitSettings,
    SplitSettings,
    check_encodings,
    check_tasks,
    default_out_dir,
    run_probe,
    write_probe,
)
from clay_exp.report import to_markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="probe.py",
        description="Location probe: fit each encoding alone (+ the same MLP head) to predict the earth "
        "world's land/sea flag and Köppen–Geiger zone from location; report accuracy per encoding.",
    )
    parser.add_argument(
        "--encodings", nargs="+", default=[], help="encodings to probe (default: all in configs/encoding/)"
    )
    parser.add_argument("--task", default="both", help=f"one of {list(TASK_CHOICES)} (default: both)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="run seeds (model init)")
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help="training points per task")
    parser.add_argument("--n-test", type=int, default=N_TEST, help="points per test set")
    parser.add_argument("--steps", type=int, default=FitSettings.steps, help="Adam steps per fit")
    parser.add_argument("--lr", type=float, default=FitSettings.lr, help="Adam learning rate")
    parser.add_argument("--hidden-dim", type=int, default=FitSettings.hidden_dim, help="head width")
    parser.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: full batch)")
    parser.add_argument(
        "--split", default=SplitSettings.split, help=f"one of {list(SPLIT_CHOICES)}: hold z3 tiles out or not"
    )
    parser.add_argument("--world-seed", type=int, default=0, help="fixes the points (with --split-seed)")
    parser.add_argument("--split-seed", type=int, default=0, help="which tiles are held out")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: logs/probe/<time>)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: the fits are small; more "
        "threads mostly wait on each other, and stall badly on a busy machine)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        fit = FitSettings(args.steps, args.lr, args.hidden_dim, batch_size=args.batch_size)
        split = SplitSettings(args.split, split_seed=args.split_seed, world_seed=args.world_seed)
        check_encodings(args.encodings)
        check_tasks(args.task)
        if args.threads < 1 or args.n_train < 1 or args.n_test < 1:
            raise ValueError(
                f"--threads={args.threads}, --n-train={args.n_train} and --n-test={args.n_test} must be >= 1"
            )
    except ValueError as error:
        parser.error(str(error))
    out = args.out or default_out_dir()  # named by the start time, like a Hydra run folder
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = run_probe(args.encodings, args.task, args.seeds, args.n_train, args.n_test, fit, split)
    finally:  # a caller in the same process (a test, a notebook) keeps its own setting
        torch.set_num_threads(threads)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    comparison, written = write_probe(result, out, settings)
    print(to_markdown(comparison))
    print(
        f"\n{len(result.runs)} fits in {result.seconds:.0f} s; wrote "
        + ", ".join(str(p) for p in written.values()),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
