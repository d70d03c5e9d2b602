"""Where one study step's time goes: whole steps of a real run against the model's own step, and
the ops that take the time (torch.profiler), for one or several variants of the config.

    python scripts/profile_step.py                   # the study step, speed=eager vs speed=default, 1 thread
    python scripts/profile_step.py --variants speed=eager speed=default speed=fast --rounds 3
    python scripts/profile_step.py experiment=study_known_answer arm=xyz --threads 2 --top 30 --variants ""

Each variant (a space-free list of extra overrides joined by commas, ``speed=eager`` and
``speed=default`` unless told; ``""`` = the config as it is)
trains ``--start + --steps`` steps of the configured run (by default `experiment=study_known_answer
arm=hierarchical`: mae_tiny on hierarchical_world 2x16x16, batch 64, mask 0.875, its loggers and
callbacks) through `clay_exp.train.train`, exactly as ``train.py`` does, and clocks the steps
``[start, start + steps)`` (one epoch after the first, by default: its validation and checkpoints
included). Against that *whole step*, the *model step* is forward + backward + optimizer step of
the same module on the same batches, nothing else (`clay_exp.benchmarking.train_steps`);
``outside`` = 1 - model / whole is the share of a step spent outside the model (data, Lightning,
validation, logging, checkpoints), and the whole step is split into its phases as Lightning's hooks
delimit them (`clay_exp.profiling.PHASES`). Variants are interleaved round by round; the best round
counts.
A last run per variant profiles the same window: the top ops by self CPU time, and the ops' share
of the window (the rest is Python between ops). Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
from typing import Any

import torch
from hydra.utils import instantiate

from clay_exp.benchmarking import (
    best_of_rounds,
    fmt,
    interleaved_rounds,
    machine,
    make_optimizer,
    markdown_table,
    train_steps,
    write_json,
)
from clay_exp.config import compose_config
from clay_exp.profiling import LAST_WINDOW, PHASES, op_share, op_table
from clay_exp.train import build_module, train

DEFAULT_OVERRIDES = ["experiment=study_known_answer", "arm=hierarchical"]


def variant_overrides(variant: str) -> list[str]:
    return [o for o in variant.split(",") if o]


def compose(args: argparse.Namespace, variant: str, folder: str, profile: bool) -> Any:
    window = "clay_exp.profiling.StepWindow"
    overrides = [
        *args.overrides,
        *variant_overrides(variant),
        f"trainer.max_steps={args.start + args.steps}",
        f"torch_threads={args.threads}",
        f"+callbacks.step_window._target_={window}",
        f"+callbacks.step_window.start={args.start}",
        f"+callbacks.step_window.steps={args.steps}",
        f"+callbacks.step_window.profile={str(profile).lower()}",
    ]
    return compose_config(overrides, folder)


def whole_step_ms(args: argparse.Namespace, variant: str, profile: bool = False) -> dict[str, Any]:
    """Train the variant's run once; the window's ms per step (and its profile)."""
    with tempfile.TemporaryDirectory(prefix="clay_exp_profile_") as folder:
        record = train(compose(args, variant, folder, profile))
    window = dict(LAST_WINDOW)
    if not window.get("steps"):
        raise RuntimeError(f"the run ended before step {args.start}: no window was measured")
    return {
        "step_ms": 1e3 * window["wall_s"] / window["steps"],
        "phases_ms": {k: 1e3 * v / window["steps"] for k, v in window["phases_s"].items()},
        "window_steps": window["steps"],
        "record_step_time_ms": 1e3 * (record.step_time_s or float("nan")),
        "record_wall_time_s": record.wall_time_s,
        "val_loss": record.final.get("val/loss"),
        "profile": window.get("profile"),
    }


def model_step_setup(args: argparse.Namespace, variant: str) -> Any:
    """The run's module, optimizer and first batches, built once (interleaved rounds reuse them)."""
    cfg = compose(args, variant, tempfile.gettempdir(), False)
    torch.manual_seed(0)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    first = list(itertools.islice(dm.train_dataloader(), args.model_steps + 3))
    batches = list(itertools.islice(itertools.cycle(first), args.model_steps + 3))
    module = build_module(cfg).train()
    return module, make_optimizer(module), batches


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    setups = {v: model_step_setup(args, v) for v in args.variants}
    device = torch.device("cpu")

    def model_ms(variant: str) -> float:
        module, optimizer, batches = setups[variant]
        return 1e3 * statistics.median(train_steps(module, optimizer, batches, device, warmup=3))

    measures: dict[str, Any] = {}
    for v in args.variants:
        measures[f"whole {v}"] = lambda v=v: whole_step_ms(args, v)
        measures[f"model {v}"] = lambda v=v: model_ms(v)
    rounds = interleaved_rounds(measures, args.rounds)
    rows = []
    for v in args.variants:
        whole = rounds[f"whole {v}"]
        step_ms, spread = best_of_rounds([r["step_ms"] for r in whole])
        model, model_spread = best_of_rounds(rounds[f"model {v}"])
        best = min(whole, key=lambda r: r["step_ms"])
        row = {
            "variant": v or "(config)",
            "step_ms": step_ms,
            "phases_ms": best["phases_ms"],
            "step_round_ms": [r["step_ms"] for r in whole],
            "step_spread": spread,
            "model_step_ms": model,
            "model_round_ms": rounds[f"model {v}"],
            "model_spread": model_spread,
            "outside_share": 1.0 - model / step_ms,
            "record_step_time_ms": [r["record_step_time_ms"] for r in whole],
            "record_wall_time_s": [r["record_wall_time_s"] for r in whole],
            "val_loss": [r["val_loss"] for r in whole],
        }
        if args.top > 0:
            profiled = whole_step_ms(args, v, profile=True)
            prof = profiled.pop("profile")
            row["profiled_step_ms"] = profiled["step_ms"]
            row["op_share"] = op_share(prof, profiled["step_ms"] * profiled["window_steps"] / 1e3)
            row["top_ops"] = op_table(prof, profiled["window_steps"], args.top)
        rows.append(row)
    base = rows[0]["step_ms"]
    for row in rows:
        row["speedup_vs_first"] = base / row["step_ms"]
    return {
        "machine": machine(),
        "overrides": args.overrides,
        "threads": args.threads,
        "window": {"start": args.start, "steps": args.steps},
        "rounds": args.rounds,
        "variants": rows,
    }


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['description']}; {report['threads']} torch thread(s)")
    w = report["window"]
    print(
        f"Run: {' '.join(report['overrides'])}; steps [{w['start']}, {w['start'] + w['steps']}) clocked, "
        f"best of {report['rounds']} interleaved rounds\n"
    )
    header = [
        "variant",
        "whole step ms",
        "spread",
        "model step ms",
        "outside the model",
        "x first",
        "val/loss",
    ]
    rows = [
        [
            r["variant"],
            fmt(r["step_ms"]),
            f"{100 * r['step_spread']:.0f} %",
            fmt(r["model_step_ms"]),
            f"{100 * r['outside_share']:.0f} %",
            fmt(r["speedup_vs_first"], ".2f"),
            fmt(r["val_loss"][0], ".6f"),
        ]
        for r in report["variants"]
    ]
    print(markdown_table(header, rows))
    print("\nThe whole step by phase (ms per step, the best round; clay_exp.profiling.PHASES):\n")
    rows = [[r["variant"], *(fmt(r["phases_ms"][p]) for p in PHASES)] for r in report["variants"]]
    print(markdown_table(["variant", *PHASES], rows))
    for r in report["variants"]:
        if "top_ops" not in r:
            continue
        print(
            f"\n{r['variant']}: top ops by self CPU (profiled window {fmt(r['profiled_step_ms'])} ms/step, "
            f"ops {100 * r['op_share']:.0f} % of it, Python between ops the rest)"
        )
        ops = [
            [o["op"][:60], fmt(o["self_ms_per_step"], ".2f"), f"{100 * o['share_of_ops']:.1f} %",
             fmt(o["calls_per_step"], ".1f")]
            for o in r["top_ops"]
        ]  # fmt: skip
        print(markdown_table(["op", "self ms/step", "of ops", "calls/step"], ops))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", default=DEFAULT_OVERRIDES, help="Hydra overrides of the run")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["speed=eager", "speed=default"],
        help="extra overrides per variant (a,b,c)",
    )
    parser.add_argument("--start", type=int, default=64, help="first clocked step (64: one study epoch in)")
    parser.add_argument("--steps", type=int, default=64, help="clocked steps (64: one study epoch)")
    parser.add_argument("--model-steps", type=int, default=30, help="timed plain model steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=20, help="ops listed per variant (0: no profile)")
    parser.add_argument("--out", default="logs/benchmarks/profile_step.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    report = run(args)
    print_tables(report)
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
