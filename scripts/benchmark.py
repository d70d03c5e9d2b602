"""Speed of the harness on this machine: encodings, worlds, Lightning overhead, peak memory.

    python scripts/benchmark.py                       # all encodings and worlds, mae_tiny, batch 64
    python scripts/benchmark.py --encodings none sincos --steps 20 --out logs/benchmark.json

Prints a table and writes JSON. Targets (issue 7): every encoding's training step <= 1.05x the step
of `none`; each world generates data >= 10x faster than mae_tiny consumes it (1 thread, in-process);
the Lightning loop <= 1.10x a plain PyTorch loop doing the same steps. `geotiff` is measured read
live and from its chip cache (`geotiff (cached)`, built once in the system's temp folder).

How close the step runs to the machine's limit: each encoding's step FLOPs (forward + backward,
`FlopCounterMode`: matmuls and attention) over its step time, as GFLOP/s and as a share of a
1024² float32 matmul's rate timed in the same interleaved rounds on the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from clay_exp.benchmarking import (
    best_of_rounds,
    fmt,
    interleaved_rounds,
    machine,
    make_optimizer,
    markdown_table,
    matmul_gflops,
    matmul_ms,
    peak_memory_mb,
    reason,
    step_flops,
    sync,
    to_device,
    torch_threads,
    train_batches,
    train_steps,
    world_throughput,
    write_json,
)
from clay_exp.catalog import encoding_names, required_overrides, unavailable_reason
from clay_exp.config import compose_config, config_options
from clay_exp.train import build_module

TARGETS = {"encoding_overhead": 1.05, "data_speedup": 10.0, "lightning_overhead": 1.10}
#: Extra rows measured after a world: (label, overrides).
WORLD_VARIANTS = {
    "geotiff": [
        (
            "geotiff (cached)",
            [
                "data=geotiff",
                "data.cache=true",
                f"data.cache_dir={Path(tempfile.gettempdir()) / 'clay_exp_data_cache'}",
            ],
        )
    ]
}
MATMUL_SIZE = 1024
_MATMUL = f"matmul {MATMUL_SIZE}²"  # the rounds' key (no encoding has a space in its name)


def bench_encodings(names: list[str], args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Median step time per encoding, best of `args.rounds` interleaved rounds.

    Interleaving the encodings round by round (rather than timing each once, in turn) keeps a burst
    of load on a shared machine from landing on one encoding's number only.
    """
    rows = {name: {"encoding": name} for name in names}
    setups: dict[str, tuple[L.LightningModule, torch.optim.Optimizer, list[dict[str, Any]]]] = {}
    batches_of: dict[str, list[dict[str, Any]]] = {}  # per world: every encoding sees the same batches
    for name in names:
        why = unavailable_reason(name, batch_keys=None)  # each runs on the world it requires
        if why:
            rows[name]["skipped"] = why
            continue
        try:
            overrides = [f"encoding={name}", *required_overrides(name), f"data.batch_size={args.batch_size}"]
            cfg = compose_config(["logger=csv", *overrides], "/tmp/clay_exp_benchmark")
            world = str(cfg.data_name)
            if world not in batches_of:
                batches_of[world] = train_batches(cfg, args.steps + args.warmup)
            module = build_module(cfg).to(device).train()
            setups[name] = (module, make_optimizer(module), batches_of[world])
            first = to_device(batches_of[world][0], device)
            flops = step_flops(lambda module=module, first=first: module(first))
            module.zero_grad(set_to_none=True)
            rows[name].update(
                world=world, encoding_params=module.parameter_counts()["encoding"], step_gflop=flops / 1e9
            )
        except Exception as error:  # a broken config or world: listed, the others go on
            rows[name]["skipped"] = reason(error)

    def median_step_ms(module: L.LightningModule, optimizer: torch.optim.Optimizer, batches: list) -> float:
        return 1e3 * statistics.median(train_steps(module, optimizer, batches, device, args.warmup))

    measures = {name: (lambda setup=setup: median_step_ms(*setup)) for name, setup in setups.items()}
    measures[_MATMUL] = lambda: matmul_ms(MATMUL_SIZE, repeats=5, device=device)
    rounds = interleaved_rounds(measures, args.rounds)
    matmul_round_ms = rounds.pop(_MATMUL)
    args.matmul = {"size": MATMUL_SIZE, "round_ms": matmul_round_ms}
    args.matmul["gflops"] = matmul_gflops(MATMUL_SIZE, min(matmul_round_ms))
    for name, round_ms in rounds.items():
        # the spread: how much the same measurement moves between rounds; differences below it are noise
        rows[name]["round_ms"] = round_ms
        rows[name]["step_ms"], rows[name]["round_spread"] = best_of_rounds(round_ms)
    base = rows.get("none", {}).get("step_ms")
    for r in rows.values():
        if "step_ms" in r:
            r["samples_per_s"] = args.batch_size / (r["step_ms"] / 1e3)
            r["gflops"] = r["step_gflop"] / (r["step_ms"] / 1e3)
            r["of_matmul"] = r["gflops"] / args.matmul["gflops"]
            if base:
                r["overhead_vs_none"] = r["step_ms"] / base
                r["meets_target"] = r["overhead_vs_none"] <= TARGETS["encoding_overhead"]
    return list(rows.values())


def bench_worlds(
    names: list[str], args: argparse.Namespace, model_rate: float | None
) -> list[dict[str, Any]]:
    rows = []
    cases = [(name, [f"data={name}"]) for name in names]
    cases = [c for name, o in cases for c in [(name, o), *WORLD_VARIANTS.get(name, [])]]
    with torch_threads(1):  # one core, as one DataLoader worker would have
        for name, overrides in cases:
            row: dict[str, Any] = {"world": name}
            try:
                row["samples_per_s"] = world_throughput(overrides, args.steps, args.batch_size)[
                    "samples_per_s"
                ]
                if model_rate:
                    row["ratio_to_model"] = row["samples_per_s"] / model_rate
                    row["meets_target"] = row["ratio_to_model"] >= TARGETS["data_speedup"]
            except Exception as error:  # e.g. geotiff without files: scripts/make_demo_geotiffs.py
                row["skipped"] = reason(error)
            rows.append(row)
    return rows


class _BatchStartClock(L.Callback):
    """perf_counter at the start of every training batch: consecutive differences are whole steps
    (data fetch, hooks, logging, forward, backward, optimizer), as the plain loop measures them."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        sync(trainer.strategy.root_device)
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        sync(trainer.strategy.root_device)
        self.starts.append(time.perf_counter())


def _lightning_steps(cfg: Any, loader: Any, device: torch.device, warmup: int) -> list[float]:
    L.seed_everything(0)
    clock = _BatchStartClock()
    trainer = L.Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(build_module(cfg), train_dataloaders=loader)
    return [b - a for a, b in zip(clock.starts[warmup:], clock.starts[warmup + 1 :], strict=False)]


def _plain_steps(cfg: Any, loader: Any, device: torch.device, warmup: int) -> list[float]:
    L.seed_everything(0)
    module = build_module(cfg).to(device).train()
    return train_steps(module, make_optimizer(module), loader, device, warmup, whole_steps=True)


def bench_lightning(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Whole-step time of Trainer.fit vs a plain PyTorch loop over the same DataLoader, model and
    optimizer (best of `args.rounds` alternating rounds)."""
    overrides = [
        f"data.batch_size={args.batch_size}",
        f"data.train_size={args.batch_size * (args.steps + args.warmup)}",
    ]
    cfg = compose_config(["logger=csv", "encoding=sincos", *overrides], "/tmp/clay_exp_benchmark_pl")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    measures = {
        name: lambda steps=steps: (
            1e3 * statistics.median(steps(cfg, dm.train_dataloader(), device, args.warmup))
        )
        for name, steps in (("plain", _plain_steps), ("lightning", _lightning_steps))
    }
    rounds = interleaved_rounds(measures, args.rounds)
    plain_ms, pl_ms = min(rounds["plain"]), min(rounds["lightning"])
    return {
        "lightning_step_ms": pl_ms,
        "plain_step_ms": plain_ms,
        "ratio": pl_ms / plain_ms,
        "meets_target": pl_ms / plain_ms <= TARGETS["lightning_overhead"],
    }


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} threads, {m['device']}, torch {m['torch']}")
    print(
        f"Model: mae_tiny, batch {report['batch_size']}, median of {report['steps']} steps, "
        f"best of {report['rounds']} interleaved rounds\n"
    )

    def skipped(name: str, r: dict[str, Any], width: int) -> list[str]:
        return [name, f"skipped: {r['skipped']}"] + [""] * (width - 2)

    header = [
        "encoding",
        "world",
        "step ms",
        "round spread",
        "samples/s",
        "x none",
        "<= 1.05x",
        "encoding params",
        "GFLOP/s",
        "of matmul",
    ]
    rows = [
        skipped(r["encoding"], r, len(header))
        if "skipped" in r
        else [
            r["encoding"],
            r["world"],
            fmt(r["step_ms"]),
            f"{100 * r['round_spread']:.0f} %",
            fmt(r["samples_per_s"], ".0f"),
            fmt(r.get("overhead_vs_none"), ".3f"),
            fmt(r.get("meets_target")),
            f"{r['encoding_params']:,}",
            fmt(r["gflops"]),
            f"{100 * r['of_matmul']:.0f} %",
        ]
        for r in report["encodings"]
    ]
    print(markdown_table(header, rows))
    mm = report["matmul"]
    print(
        f"\nGFLOP/s: the step's FLOPs (forward + backward, FlopCounterMode) per second; of matmul: "
        f"against a {mm['size']}² float32 matmul in the same rounds, {mm['gflops']:.1f} GFLOP/s"
    )
    header = ["world", "samples/s (1 thread)", "x model consumption", ">= 10x"]
    rows = [
        skipped(r["world"], r, len(header))
        if "skipped" in r
        else [
            r["world"],
            fmt(r["samples_per_s"], ".0f"),
            fmt(r.get("ratio_to_model")),
            fmt(r.get("meets_target")),
        ]
        for r in report["worlds"]
    ]
    print("\n" + markdown_table(header, rows))
    pl = report["lightning"]
    print("\n| loop | step ms |\n|---|---|")
    print(f"| plain PyTorch | {fmt(pl['plain_step_ms'])} |\n| Lightning | {fmt(pl['lightning_step_ms'])} |")
    print(f"| ratio (<= 1.10) | {fmt(pl['ratio'], '.3f')} ({fmt(pl['meets_target'])}) |")
    kind = "GPU allocated" if "cuda" in report["device"] else "RSS"
    print(f"\nPeak memory: {report['peak_memory_mb']:.0f} MiB ({kind})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encodings", nargs="*", default=None, help="default: every configs/encoding/*.yaml")
    parser.add_argument("--worlds", nargs="*", default=None, help="default: every configs/data/*.yaml")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best median counts")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="logs/benchmark.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    with torch_threads(args.threads):  # restored after: main() may run inside another program
        report = run(args, device)
    print_tables(report)
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


def run(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    encodings = bench_encodings(args.encodings or encoding_names(), args, device)
    model_rate = next(
        (r["samples_per_s"] for r in encodings if r["encoding"] == "none" and "samples_per_s" in r), None
    )
    worlds = bench_worlds(args.worlds or config_options("data"), args, model_rate)
    report = {
        "machine": machine(),
        "device": str(device),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "rounds": args.rounds,
        "targets": TARGETS,
        "encodings": encodings,
        "matmul": getattr(args, "matmul", None),
        "worlds": worlds,
        "lightning": bench_lightning(args, device),
        "peak_memory_mb": peak_memory_mb(device),
    }
    return report


if __name__ == "__main__":
    main()
