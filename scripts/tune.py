"""Tune a study, every arm with the same budget: ``python scripts/tune.py experiment=<study> [arms=a,b]
[trials=N] [<hydra overrides>] [--dry-run] [--jobs 2] [--name tune] [--report]``.

Reads the study's declaration (``study.tuning``), runs each arm's trials as ordinary runs on the
tuning chips and seeds (``stage=tune``) into ``logs/<experiment>/tuning/<name>/``, and writes each
arm's chosen values to ``configs/tuned/<experiment>/<arm>.yaml``, which the study's sweep then
composes (``python train.py -m experiment=<study>``). Rerunning the same command continues a killed
tuning. ``--dry-run`` prints the plan (arms x trials x steps, knobs, estimated minutes) and runs
nothing but, without ``--step-time`` or earlier runs to go by, one epoch to time a step. ``--report``
writes the tuning report (tuning.md, tuning.csv, tuning_best_so_far.png) into the tuning folder.
Other ``key=value`` arguments are Hydra overrides applied to every trial. Logic: clay_exp/tuning/.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clay_exp.report.tuning import tuning_from_folder
from clay_exp.report.tuning_markdown import write_tuning
from clay_exp.tuning.estimate import (
    StepTime,
    measure_step_time,
    plan_text,
    recheck_plan,
    recheck_text,
    step_time_from_runs,
    step_time_from_trials,
)
from clay_exp.tuning.plan import make_plan
from clay_exp.tuning.runner import run_tuning
from clay_exp.tuning.trials import TuningError

TUNER_KEYS = ("experiment", "arms", "trials")


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="tune.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "settings",
        nargs="+",
        metavar="key=value",
        help="experiment=<study> (required), arms=a,b (default: every arm the study sweeps), trials=N "
        "(default: the study's), and Hydra overrides for every trial",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and the estimated time; run nothing"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="trials side by side, one thread each (default 2)"
    )
    parser.add_argument(
        "--name", default="tune", help="the tuning folder's name under logs/<experiment>/tuning/"
    )
    parser.add_argument(
        "--step-time", type=float, default=None, help="seconds per step for the estimate (default: measured)"
    )
    parser.add_argument(
        "--report", action="store_true", help="write the tuning report into the tuning folder"
    )
    parser.add_argument(
        "--recheck",
        metavar="ARM",
        default=None,
        help="rerun ARM's finished trials at the full budget and compare the two rankings (Spearman)",
    )
    parser.add_argument(
        "--tuned-dir", default=None, help="where the chosen values go (default configs/tuned/<experiment>)"
    )
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = parse_args(argv)
    mine = {k: v for k, _, v in (s.partition("=") for s in args.settings) if k in TUNER_KEYS}
    overrides = [s for s in args.settings if s.partition("=")[0] not in TUNER_KEYS]
    if "experiment" not in mine:
        parser.error("experiment=<study> is required, e.g. experiment=study_known_answer")
    try:
        plan = make_plan(
            mine["experiment"],
            overrides,
            arms=[a for a in mine["arms"].split(",") if a]
            if mine.get("arms")
            else args.recheck and [args.recheck],
            trials=int(mine["trials"]) if mine.get("trials") else None,
            name=args.name,
            tuned_dir=args.tuned_dir,
        )
    except ValueError as error:
        parser.error(str(error))
    if args.recheck:
        try:
            full, given = recheck_plan(plan, args.recheck)
            run_tuning(full, jobs=args.jobs, given=given)
        except (ValueError, TuningError) as error:
            print(f"recheck stopped: {error}", file=sys.stderr)
            return 1
        print(recheck_text(plan, full, args.recheck))
        return 0
    if args.dry_run:
        step = (
            StepTime(args.step_time, 10.0, "--step-time")
            if args.step_time
            else step_time_from_trials(plan) or step_time_from_runs(plan)
        )
        try:
            step = step or measure_step_time(plan)
        except TuningError as error:
            print(f"could not time a step: {error}", file=sys.stderr)
        print(plan_text(plan, step, args.jobs))
        return 0
    if not args.report:
        print(
            plan_text(plan, step_time_from_trials(plan) or step_time_from_runs(plan), args.jobs),
            file=sys.stderr,
        )
        try:
            written = run_tuning(plan, jobs=args.jobs)
        except TuningError as error:
            print(f"tuning stopped: {error}", file=sys.stderr)
            return 1
        for arm, path in written.items():
            print(f"{arm}: {path}")
    paths = write_tuning(tuning_from_folder(plan.folder), plan.folder)
    print("Wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
