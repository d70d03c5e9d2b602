"""Speed of the harness on this machine: encodings, worlds, Lightning overhead, peak memory.

    python scripts/benchmark.py                       # all encodings and worlds, mae_tiny, batch 64
    python scripts/benchmark.py --encodings none sincos --steps 20 --out logs/benchmark.json

Prints a table and writes JSON. Targets (issue 7): every encoding's training step <= 1.05x the step
of `none`; each world generates data >= 10x faster than mae_tiny consumes it (1 thread, in-process);
the Lightning loop <= 1.10x a plain PyTorch loop doing the same steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra.utils import instantiate

from clay_exp.config import compose_config, config_options
from clay_exp.train import build_module

TARGETS = {"encoding_overhead": 1.05, "data_speedup": 10.0, "lightning_overhead": 1.10}


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches_for(overrides: list[str], count: int) -> tuple[list[dict[str, Any]], Any]:
    cfg = compose_config(["logger=csv", *overrides], "/tmp/clay_exp_benchmark")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    return [next(it) for _ in range(count)], cfg


def step_times(
    module: L.LightningModule, batches: list[dict[str, Any]], device: torch.device, warmup: int
) -> list[float]:
    """Plain PyTorch training steps (forward, backward, optimizer) with the module's own optimizer."""
    module.to(device).train()
    optimizer = torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "lr_scale"} for g in module.param_groups()]
    )
    times = []
    for i, batch in enumerate(batches):
        sync(device)
        t0 = time.perf_counter()
        loss = module(to_device(batch, device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def bench_encodings(names: list[str], args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    keys: dict[str, set[str]] = {}  # batch keys of each world, looked up once

    def world_keys(world: str) -> set[str]:
        if world not in keys:
            try:
                keys[world] = set(batches_for([f"data={world}", "data.batch_size=2"], 1)[0][0])
            except Exception:  # a world that needs files first
                keys[world] = set()
        return keys[world]

    for name in names:
        row: dict[str, Any] = {"encoding": name}
        try:
            cfg = compose_config(
                ["logger=csv", f"encoding={name}", f"data.batch_size={args.batch_size}"], "/tmp/x"
            )
            module = build_module(cfg)
            needs = set(module.encoding.inputs)
            world = next((w for w in ["synthetic", *config_options("data")] if needs <= world_keys(w)), None)
            if world is None:
                raise RuntimeError(f"no world provides batch keys {sorted(needs)}")
            batches, _ = batches_for(
                [f"data={world}", f"data.batch_size={args.batch_size}"], args.steps + args.warmup
            )
            times = step_times(module, batches, device, args.warmup)
            row.update(
                world=world,
                step_ms=1e3 * statistics.median(times),
                samples_per_s=args.batch_size / statistics.median(times),
                encoding_params=module.parameter_counts()["encoding"],
            )
        except Exception as error:  # an optional extra not installed, a world that needs files, ...
            row["skipped"] = f"{type(error).__name__}: {error}"[:160]
        rows.append(row)
    base = next((r["step_ms"] for r in rows if r["encoding"] == "none" and "step_ms" in r), None)
    for r in rows:
        if base and "step_ms" in r:
            r["overhead_vs_none"] = r["step_ms"] / base
            r["meets_target"] = r["overhead_vs_none"] <= TARGETS["encoding_overhead"]
    return rows


def bench_worlds(
    names: list[str], args: argparse.Namespace, model_rate: float | None
) -> list[dict[str, Any]]:
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core, as one DataLoader worker would have
    try:
        for name in names:
            row: dict[str, Any] = {"world": name}
            try:
                cfg = compose_config(
                    ["logger=csv", f"data={name}", f"data.batch_size={args.batch_size}"], "/tmp/x"
                )
                dm = instantiate(cfg.data)
                dm.setup("fit")
                loader = dm.train_dataloader()
                it = iter(loader)
                next(it)  # start-up (file opening, caches)
                t0 = time.perf_counter()
                n = 0
                for _ in range(args.steps):
                    try:
                        n += next(it)["image"].shape[0]
                    except StopIteration:
                        it = iter(loader)
                rate = n / (time.perf_counter() - t0)
                row["samples_per_s"] = rate
                if model_rate:
                    row["ratio_to_model"] = rate / model_rate
                    row["meets_target"] = row["ratio_to_model"] >= TARGETS["data_speedup"]
            except Exception as error:
                row["skipped"] = f"{type(error).__name__}: {error}"[:160]
            rows.append(row)
    finally:
        torch.set_num_threads(threads)
    return rows


class _StepTimer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self._t0 = warmup, [], 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        sync(trainer.strategy.root_device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        sync(trainer.strategy.root_device)
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self._t0)


def bench_lightning(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Time per step of Trainer.fit vs a plain loop over the same DataLoader, model and optimizer."""
    overrides = [
        f"data.batch_size={args.batch_size}",
        f"data.train_size={args.batch_size * (args.steps + args.warmup)}",
    ]
    cfg = compose_config(["logger=csv", "encoding=sincos", *overrides], "/tmp/clay_exp_benchmark_pl")
    dm = instantiate(cfg.data)
    dm.setup("fit")

    L.seed_everything(0)
    module = build_module(cfg)
    timer = _StepTimer(args.warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    fit_wall = time.perf_counter() - t0

    L.seed_everything(0)
    module = build_module(cfg).to(device)
    optimizer = torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "lr_scale"} for g in module.param_groups()]
    )
    plain = []
    for i, batch in enumerate(dm.train_dataloader()):
        sync(device)
        t = time.perf_counter()
        loss = module(to_device(batch, device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            plain.append(time.perf_counter() - t)
    # The Lightning timer spans batch start to end (its hooks, logging, optimizer closure); the data
    # fetch is outside both measurements, so the ratio is the loop's own overhead.
    pl_ms, plain_ms = 1e3 * statistics.median(timer.times), 1e3 * statistics.median(plain)
    return {
        "lightning_step_ms": pl_ms,
        "plain_step_ms": plain_ms,
        "ratio": pl_ms / plain_ms,
        "meets_target": pl_ms / plain_ms <= TARGETS["lightning_overhead"],
        "lightning_fit_wall_s": fit_wall,
    }


def fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, spec) if isinstance(v, float) else str(v)


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} threads, {m['device']}, torch {m['torch']}")
    print(f"Model: mae_tiny, batch {report['batch_size']}, median of {report['steps']} steps\n")
    print("| encoding | world | step ms | samples/s | x none | <= 1.05x | encoding params |")
    print("|---|---|---|---|---|---|---|")
    for r in report["encodings"]:
        if "skipped" in r:
            print(f"| {r['encoding']} | skipped: {r['skipped']} | | | | | |")
            continue
        print(
            f"| {r['encoding']} | {r['world']} | {fmt(r['step_ms'])} | {fmt(r['samples_per_s'], '.0f')} | "
            f"{fmt(r.get('overhead_vs_none'), '.3f')} | {fmt(r.get('meets_target'))} | "
            f"{r['encoding_params']:,} |"
        )
    print("\n| world | samples/s (1 thread) | x model consumption | >= 10x |")
    print("|---|---|---|---|")
    for r in report["worlds"]:
        if "skipped" in r:
            print(f"| {r['world']} | skipped: {r['skipped']} | | |")
            continue
        print(
            f"| {r['world']} | {fmt(r['samples_per_s'], '.0f')} | {fmt(r.get('ratio_to_model'))} | "
            f"{fmt(r.get('meets_target'))} |"
        )
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
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="logs/benchmark.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    encodings = bench_encodings(args.encodings or config_options("encoding"), args, device)
    model_rate = next(
        (r["samples_per_s"] for r in encodings if r["encoding"] == "none" and "samples_per_s" in r), None
    )
    worlds = bench_worlds(args.worlds or config_options("data"), args, model_rate)
    report = {
        "machine": machine(),
        "device": str(device),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "targets": TARGETS,
        "encodings": encodings,
        "worlds": worlds,
        "lightning": bench_lightning(args, device),
        "peak_memory_mb": peak_memory_mb(device),
    }
    print_tables(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {out}")
    return report


if __name__ == "__main__":
    main()
