"""How long a study sweep takes on each speed path, and whether the paths give the same numbers.

    python scripts/benchmark_study.py                                   # all arms x 5 seeds, both paths
    python scripts/benchmark_study.py --arms none sincos hierarchical --seeds 0 1 2 3 4 --rounds 2
    python scripts/benchmark_study.py --arms none hierarchical --seeds 0 1 --extra trainer.max_steps=20
    python scripts/benchmark_study.py --paths eager fast fast+seeds5    # 5 seeds a process (seed groups)

Runs ``python train.py -m experiment=<study> arm=<arms> seed=<seeds> speed=<path>`` as a user
would (``hydra/launcher=parallel``: ``--jobs`` processes of ``--threads`` torch threads each; 2 x 1
is a study on this 2-core machine), once per path and round, the paths' order alternating from
round to round so that a change in the machine's load lands on both. Each sweep's wall time is
clocked around its process (a path ``<speed>+seeds<k>`` adds ``seeds_per_process=<k>``: each k
seeds of an arm one job, trained as one batched model, clay_exp.seed_group); the ratio is the first
path's time over each other path's (> 1: faster than the first). The numbers are paired run by run
(same arm, same seed): each run's final ``val/loss`` and ``val_heldout/loss`` on a path minus the
first path's, with the mean difference's 95 % interval over the runs (the paths compute the same
numbers when every difference is 0, or the interval holds 0). Prints tables and writes JSON; the
sweeps' folders are kept under ``--logs`` (``--clean`` removes them).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from clay_exp.benchmarking import fmt, machine, markdown_table, write_json
from clay_exp.config import swept_options
from clay_exp.report.stats import mean_ci
from clay_exp.results import RunRecord, find_result_files

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("val/loss", "val_heldout/loss")


#: A path's optional seed grouping: ``fast+seeds5`` = ``speed=fast seeds_per_process=5``.
GROUPED = "+seeds"


def path_overrides(path: str) -> list[str]:
    """The overrides of one path: ``<speed>`` or ``<speed>+seeds<k>``."""
    speed, grouped, k = path.partition(GROUPED)
    if grouped and not (k.isdigit() and int(k) >= 1):
        raise ValueError(f"path {path!r}: write <speed>+seeds<k> with k a positive integer, e.g. fast+seeds5")
    return [f"speed={speed}", *([f"seeds_per_process={k}"] if grouped else [])]


def sweep_command(args: argparse.Namespace, path: str, folder: Path) -> list[str]:
    return [
        sys.executable, str(ROOT / "train.py"), "-m", f"experiment={args.experiment}",
        "hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.jobs}", f"torch_threads={args.threads}",
        f"arm={','.join(args.arms)}", f"seed={','.join(str(s) for s in args.seeds)}", *path_overrides(path),
        f"hydra.sweep.dir={folder}", "trainer.enable_progress_bar=false", *args.extra,
    ]  # fmt: skip


def run_sweep(args: argparse.Namespace, path: str, folder: Path) -> dict[str, Any]:
    """One sweep of every arm x seed on `path`: its wall time and each run's record."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_SILENT": "true"}
    started = time.perf_counter()
    command = sweep_command(args, path, folder)
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the {path} sweep exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    runs = {}
    for file in find_result_files(folder):
        record = RunRecord.load(file.parent)
        arm = (record.config.get("encoding_name") or record.encoding) if record.config else record.encoding
        runs[f"{arm}-s{record.seed}"] = {
            "status": record.status,
            **{m: record.final.get(m) for m in METRICS},
            "step_time_s": record.step_time_s,
            "wall_time_s": record.wall_time_s,
        }
    expected = len(args.arms) * len(args.seeds)
    if len(runs) != expected or any(r["status"] != "completed" for r in runs.values()):
        raise RuntimeError(f"the {path} sweep in {folder} left {len(runs)} runs, not {expected} completed")
    return {"wall_s": wall, "runs": runs}


def paired(first: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Run-by-run differences (other - first) of each metric: mean, 95 % interval, max |d|."""
    out = {}
    for metric in METRICS:
        diffs = [
            other[key][metric] - run[metric]
            for key, run in first.items()
            if run.get(metric) is not None and other.get(key, {}).get(metric) is not None
        ]
        if not diffs:
            continue
        summary = mean_ci(diffs)
        zero_inside = summary.ci_low <= 0 <= summary.ci_high if len(diffs) > 1 else diffs[0] == 0
        out[metric] = {
            "n": len(diffs),
            "mean": summary.mean,
            "ci": [summary.ci_low, summary.ci_high],
            "max_abs": max(abs(d) for d in diffs),
            "all_equal": all(d == 0 for d in diffs),
            "same_within_interval": bool(all(d == 0 for d in diffs) or zero_inside),
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.logs) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    sweeps: dict[str, list[dict[str, Any]]] = {p: [] for p in args.paths}
    for r in range(args.rounds):
        order = args.paths if r % 2 == 0 else args.paths[::-1]
        for path in order:
            folder = root / f"round{r}-{path}"
            sweep = run_sweep(args, path, folder)
            sweeps[path].append(sweep)
            print(f"round {r}: speed={path} {sweep['wall_s']:.1f} s", flush=True)
            if args.clean:
                shutil.rmtree(folder, ignore_errors=True)
    first = args.paths[0]
    rows = []
    for path in args.paths:
        walls = [s["wall_s"] for s in sweeps[path]]
        steps = [r["step_time_s"] for s in sweeps[path] for r in s["runs"].values() if r["step_time_s"]]
        rows.append(
            {
                "path": path,
                "wall_s": min(walls),
                "round_wall_s": walls,
                "ratio": min(w for w in (s["wall_s"] for s in sweeps[first])) / min(walls),
                "round_ratio": [
                    a["wall_s"] / b["wall_s"] for a, b in zip(sweeps[first], sweeps[path], strict=True)
                ],
                "median_step_ms": 1e3 * statistics.median(steps) if steps else math.nan,
                "paired": paired(sweeps[first][0]["runs"], sweeps[path][0]["runs"]),
            }
        )
    return {
        "machine": machine(),
        "experiment": args.experiment,
        "arms": args.arms,
        "seeds": args.seeds,
        "jobs": args.jobs,
        "threads": args.threads,
        "extra": args.extra,
        "rounds": args.rounds,
        "logs": str(root),
        "paths": rows,
        "runs": {p: [s["runs"] for s in sweeps[p]] for p in args.paths},
    }


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['description']}")
    print(
        f"Sweep: experiment={report['experiment']}, "
        f"{len(report['arms'])} arms x {len(report['seeds'])} seeds, "
        f"{report['jobs']} jobs x {report['threads']} thread(s), {report['rounds']} round(s), "
        f"extra: {' '.join(report['extra']) or '-'}\n"
    )
    first = report["paths"][0]["path"]
    header = ["speed", "sweep wall s", "rounds", f"x {first}", "median step ms"]
    rows = [
        [f"`{r['path']}`", fmt(r["wall_s"]), " / ".join(f"{w:.1f}" for w in r["round_wall_s"]),
         fmt(r["ratio"], ".2f"), fmt(r["median_step_ms"])]
        for r in report["paths"]
    ]  # fmt: skip
    print(markdown_table(header, rows))
    header = ["speed", "metric", "runs", f"mean diff vs {first}", "95 % interval", "max |diff|"]
    header.append("same numbers")
    rows = []
    for r in report["paths"][1:]:
        for metric, d in r["paired"].items():
            same = "within interval" if d["same_within_interval"] else "NO"
            same = "identical" if d["all_equal"] else same
            interval = f"[{d['ci'][0]:.2e}, {d['ci'][1]:.2e}]"
            row = [f"`{r['path']}`", metric, d["n"], f"{d['mean']:.2e}", interval, f"{d['max_abs']:.2e}"]
            rows.append([*row, same])
    if rows:
        print("\n" + markdown_table(header, rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--experiment", default="study_known_answer")
    parser.add_argument("--arms", nargs="+", default=None, help="default: every arm the study sweeps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["eager", "default"],
        help="speed options (<speed>+seeds<k>: k seeds a process), the first the base",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (hydra.launcher.n_jobs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--rounds", type=int, default=1, help="sweeps per path, the order alternating")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run")
    parser.add_argument("--logs", default="logs/benchmarks/study", help="where the sweeps' folders go")
    parser.add_argument("--clean", action="store_true", help="remove each sweep's folder once read")
    parser.add_argument("--out", default="logs/benchmarks/study.json")
    args = parser.parse_args(argv)
    if args.arms is None:
        args.arms = swept_options([f"experiment={args.experiment}"], "arm")
    report = run(args)
    print_tables(report)
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
