"""Embedding probe: ``python scripts/probe_embeddings.py <sweep dirs> [--checkpoint best|last] [--out DIR]``.

For every completed run of the sweeps: freeze its encoder (its checkpoint, loaded with
``weights_only=True``), embed chips with the location withheld and given (mean-pooled encoder
tokens, every patch visible), fit the same closed-form linear probe to labels the world knows
(earth: majority Köppen–Geiger zone, land fraction; hierarchical_world: the true z3 factors) on
training chips, score it on ``val`` and ``val_heldout``. Writes ``embedding_probe.json`` into each run
folder (``scripts/compare.py`` then shows the probe beside the losses) and, into ``--out`` (default
``<first dir>/embedding_probe``), the report of the probe per arm (mean ± interval over seeds, paired
tests, a study's declared comparisons): comparison.md (also printed), comparison.csv, runs.csv,
final_loss.png. The logic lives in clay_exp.probe.embeddings; this is only its command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from clay_exp.probe.embeddings import (
    CHECKPOINT_CHOICES,
    N_TRAIN,
    ProbeSettings,
    probe_sweeps,
)
from clay_exp.report import Metric, compare, to_markdown, write_report
from clay_exp.report.reliance import probe_metrics

DESCRIPTION = (
    "Embedding probe: each run's frozen encoder embeds chips with every patch visible (mean-pooled "
    "encoder tokens), with the location withheld (the injection's missing path) and given; a "
    "closed-form linear probe (ridge regression, or the ridge classifier for classes; λ by 5-fold "
    "cross-validation on the training chips over one grid, the same for every run) fitted on the "
    "first {n} training chips (all of them if fewer) is scored on each validation set. "
    "`<set>/probe_<label>_<score>_<mode>`: `acc` accuracy, `r2` R² (1 − SSE/SST over the label's "
    "outputs); higher is better. Each value is the mean over seeds."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="probe_embeddings.py",
        description="Embedding probe of every trained run of the sweeps: do its image features get better "
        "or worse with a location encoding, with the location withheld and given?",
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) folders")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: <first dir>/embedding_probe)"
    )
    parser.add_argument(
        "--checkpoint",
        default="best",
        help=f"which checkpoint of each run: one of {list(CHECKPOINT_CHOICES)}",
    )
    parser.add_argument(
        "--n-train", type=int, default=N_TRAIN, help="training chips the probes are fitted on"
    )
    parser.add_argument(
        "--level", type=int, default=3, help="hierarchical_world: the tile level of the factors"
    )
    parser.add_argument(
        "--no-write-runs", action="store_true", help="do not write embedding_probe.json into the run folders"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    try:
        settings = ProbeSettings(n_train=args.n_train, checkpoint=args.checkpoint, level=args.level)
        if args.threads < 1:
            raise ValueError(f"--threads={args.threads} must be >= 1")
        missing = [str(d) for d in args.dirs if not d.is_dir()]
        if missing:
            raise ValueError(f"not a folder: {missing}")
    except ValueError as error:
        parser.error(str(error))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        runs = probe_sweeps(
            args.dirs, settings, write_runs=not args.no_write_runs, log=lambda m: print(m, file=sys.stderr)
        )
    finally:  # a caller in the same process (a test, a notebook) keeps its own setting
        torch.set_num_threads(threads)
    keys = probe_metrics(runs)
    if not keys:
        print("no run could be probed (see the messages above)", file=sys.stderr)
        return 1
    comparison = compare(
        runs,
        [Metric(k, higher_is_better=True) for k in keys],
        sources=args.dirs,
        title="Embedding probe",
        description=DESCRIPTION.format(n=settings.n_train),
    )
    out = args.out or args.dirs[0] / "embedding_probe"
    written = write_report(comparison, runs, out, curves=False)
    print(to_markdown(comparison))
    print("\nWrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
