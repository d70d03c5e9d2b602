"""Compare the encodings of one or more sweeps: ``python scripts/compare.py <multirun dir> [more dirs]``.

Writes comparison.md (also printed), comparison.csv, runs.csv, loss_curves.png and final_loss.png
into the first folder (or ``--out``); where the runs declare a study (a ``study`` config node), the
report leads with it (declared comparisons, gap closed, ranking check, floors) and also writes
declared.png, declared.csv, gaps.csv and the cached floors (floors-<key>.json); where they declare
tuning, a tuning section (tuning.md/.csv, tuning_best_so_far.png, appended to comparison.md). Runs
that logged the location-reliance measures (and whose folders hold an ``embedding_probe.json`` from
scripts/probe_embeddings.py) also get reliance, robustness, prior and probe tables (docs/reliance.md).
The logic lives in the package clay_exp.report (clay_exp/report/build.py runs it end to end), shared
with the notebook; this is only its command line. A ``results.json`` that cannot be read is listed
in the report with its parse error (and warned about here); it never stops the report of the others.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from clay_exp.report.build import analyse_sweeps, write_sweep_report
from clay_exp.report.study_floors import FLOOR_CHIPS
from clay_exp.report.table import BASELINE, YARDSTICK


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description="Compare the encodings of one or more sweeps: comparison.md/.csv, runs.csv and plots.",
    )
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="multirun folders (e.g. logs/compare_encodings/multiruns/<date>)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the first folder)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise significance level of the tests"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help=f"the encoding at 0 %% of the 'gap closed' column (default: {BASELINE}, no location)",
    )
    parser.add_argument(
        "--yardstick",
        default=None,
        help=f"the encoding at 100 %% of the 'gap closed' column (default: {YARDSTICK}, the true latents)",
    )
    parser.add_argument(
        "--floors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the world's information floors beside a study's losses (default: on when the runs "
        "declare a study; computed on hierarchical_world, cached as floors-<key>.json in the output folder)",
    )
    parser.add_argument(
        "--floor-chips",
        type=int,
        default=FLOOR_CHIPS,
        help=f"Monte-Carlo chips of the hierarchical floors (default {FLOOR_CHIPS}: ~4 s on an idle thread)",
    )
    parser.add_argument(
        "--floors-json",
        type=Path,
        default=None,
        help="floors from scripts/floors.py --out (any world), used instead of computing them",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help="resamples of the paired bootstraps (gap closed, ranking check; fixed RNG seed)",
    )
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = parse_args(argv)
    # The report's warnings (an unreadable metrics.csv, ...) on stderr, one line each.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    try:
        report = analyse_sweeps(
            args.dirs,
            confidence=args.confidence,
            alpha=args.alpha,
            baseline=args.baseline,
            yardstick=args.yardstick,
            resamples=args.resamples,
        )
        if args.floor_chips < 2 or args.resamples < 1:
            raise ValueError("--floor-chips must be >= 2 and --resamples >= 1")
        if args.floors_json is not None and not args.floors_json.is_file():
            raise ValueError(f"--floors-json {str(args.floors_json)!r} is not a file")
    except ValueError as error:
        parser.error(str(error))
    out_dir = args.out or args.dirs[0]
    write_sweep_report(report, args.dirs, out_dir, args.floors, args.floor_chips, args.floors_json)
    print(report.markdown())
    if report.left_out:
        print(
            f"\n{report.left_out} run(s) failed or did not finish (or could not be read): listed in the "
            "report, not averaged.",
            file=sys.stderr,
        )
    print("\nWrote " + ", ".join(str(p) for p in report.written.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
