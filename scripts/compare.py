"""Compare the encodings of one or more sweeps: ``python scripts/compare.py <multirun dir> [more dirs]``.

Writes comparison.md (also printed), comparison.csv, runs.csv, loss_curves.png and final_loss.png
into the first folder (or ``--out``). The logic lives in the package clay_exp.report, shared with the
notebook; this is only its command line. A ``results.json`` that cannot be read is listed in the
report with its parse error (and warned about here); it never stops the report of the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clay_exp.report import (
    BASELINE,
    LOSS_METRICS,
    UNREADABLE,
    YARDSTICK,
    compare,
    load_runs,
    to_markdown,
    write_report,
)


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
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = parse_args(argv)
    try:
        runs = load_runs(*args.dirs)
        encodings = sorted({r.encoding for r in runs})
        for flag, name in (("--baseline", args.baseline), ("--yardstick", args.yardstick)):
            if name is not None and name not in encodings:  # a typo would silently drop the column
                raise ValueError(f"{flag}={name!r} ran in none of these sweeps; encodings: {encodings}")
        comparison = compare(
            runs,
            LOSS_METRICS,
            args.confidence,
            args.alpha,
            sources=args.dirs,
            baseline=args.baseline or BASELINE,
            yardstick=args.yardstick or YARDSTICK,
        )
    except ValueError as error:
        parser.error(str(error))
    for run in runs:
        if run.status == UNREADABLE:
            print(f"warning: left out of the report, unreadable: {run.error}", file=sys.stderr)
    written = write_report(comparison, runs, args.out or args.dirs[0])
    print(to_markdown(comparison))
    left_out = sum(len(s.not_averaged) for s in comparison.sections) + len(comparison.unreadable)
    if left_out:
        print(
            f"\n{left_out} run(s) failed or did not finish (or could not be read): listed in the "
            "report, not averaged.",
            file=sys.stderr,
        )
    print("\nWrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
