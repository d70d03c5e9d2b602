"""Cost of each spatial encoding on its own: forward + backward per 4096 coordinates, and per batch of 64.

    python scripts/benchmark_encodings.py                        # every encoding, SH at L = 10, 20, 40, 100
    python scripts/benchmark_encodings.py --encodings wrap rff --sh-degrees 10 --out logs/enc.json

Each encoding is built from its YAML (as a run builds it), fed uniformly random points on the sphere
(float64 degrees, as batches carry them), and timed for ``forward + backward`` of ``out.square().mean()``
(forward only for encodings with nothing to train). The spherical harmonics run at each of
``--sh-degrees`` with their YAML head (siren) and with the ``linear`` head (the harmonics alone).
The reference is one ``mae_tiny`` training step at batch 64 with ``encoding=none`` (forward, backward,
AdamW); the target (issue 4): no encoding costs more than 5 % of that step at the same batch size.
Runs on the CPU, and also on the GPU when one is present. Prints a table (best of the repeats, the
time least disturbed by other jobs on a shared machine; JSON has the medians too) and writes JSON.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from clay_exp.benchmarking import (
    machine,
    make_optimizer,
    summary,
    time_calls,
    torch_threads,
    train_batches,
    train_steps,
    write_json,
)
from clay_exp.catalog import build_encoding, encoding_names, unavailable_reason
from clay_exp.config import compose_config
from clay_exp.train import build_module

TARGET_SHARE_OF_STEP = 0.05


def sphere_points(n: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lat = torch.rad2deg(torch.asin(2 * torch.rand(n, generator=g, dtype=torch.float64) - 1))
    lon = 360 * torch.rand(n, generator=g, dtype=torch.float64) - 180
    return {"lat": lat.to(device), "lon": lon.to(device)}


def timings_ms(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    return [1e3 * t for t in time_calls(fn, repeats, warmup, device)]


def forward_backward(enc: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    trainable = [p for p in enc.parameters() if p.requires_grad]

    def run() -> None:
        out = enc(batch)
        if trainable:
            out.square().mean().backward()
            for p in trainable:
                p.grad = None

    return run


def cases(names: list[str], sh_degrees: list[int]) -> list[tuple[str, str, list[str]]]:
    """(label, encoding, overrides): every encoding as configured, SH at each degree and head."""
    out = []
    for name in names:
        if name == "spherical_harmonics":
            for degrees in sh_degrees:
                for head in ("siren", "linear"):
                    overrides = [f"encoding.degrees={degrees}"] + (
                        [f"encoding.head={head}"] if head != "siren" else []
                    )
                    out.append((f"spherical_harmonics L={degrees} {head}", name, overrides))
        else:
            out.append((name, name, []))
    return out


def mae_tiny_step_ms(device: torch.device, batch_size: int, steps: int) -> dict[str, float]:
    """One mae_tiny training step with no encoding (clay_exp.benchmarking.train_steps), best and median."""
    overrides = ["encoding=none", f"data.batch_size={batch_size}"]
    cfg = compose_config(["logger=csv", *overrides], "/tmp/clay_exp_benchmark_encodings")
    module = build_module(cfg)
    times = train_steps(module, make_optimizer(module), train_batches(cfg, steps + 3), device, warmup=3)
    return summary([1e3 * t for t in times])


def bench_device(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    step_ms = mae_tiny_step_ms(device, args.batch_size, args.step_repeats)
    big, small = sphere_points(args.points, device), sphere_points(args.batch_size, device, seed=1)
    rows = []
    for label, name, overrides in cases(args.encodings or encoding_names(), args.sh_degrees):
        row: dict[str, Any] = {"encoding": label, "config": name, "overrides": overrides}
        why = unavailable_reason(name)  # random points are a location and nothing else
        if why:
            row["skipped"] = why
            rows.append(row)
            continue
        torch.manual_seed(0)
        enc = build_encoding(name, overrides).to(device)
        enc.train()
        trainable = sum(p.numel() for p in enc.parameters() if p.requires_grad)
        per_points = summary(timings_ms(forward_backward(enc, big), device, args.repeats))
        per_batch = summary(timings_ms(forward_backward(enc, small), device, args.repeats * 5))
        share = per_batch["best"] / step_ms["best"]
        row.update(
            out_dim=enc.out_dim,
            trainable_params=trainable,
            backward=trainable > 0,
            ms_per_points=per_points["best"],
            ms_per_batch=per_batch["best"],
            median_ms_per_points=per_points["median"],
            median_ms_per_batch=per_batch["median"],
            share_of_step=share,
            meets_target=share <= TARGET_SHARE_OF_STEP,
        )
        rows.append(row)
    return {
        "device": str(device),
        "mae_tiny_step_ms": step_ms["best"],
        "mae_tiny_step_median_ms": step_ms["median"],
        "encodings": rows,
    }


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{result['device']}: mae_tiny training step at batch {args.batch_size} (encoding=none): "
        f"{result['mae_tiny_step_ms']:.1f} ms; target: each encoding <= {TARGET_SHARE_OF_STEP:.0%} of it "
        "(best of the repeats throughout)\n"
    )
    print(
        f"| encoding | out_dim | fwd+bwd ms / {args.points} | fwd+bwd ms / {args.batch_size} "
        f"| % of step | <= 5 % |"
    )
    print("|---|---|---|---|---|---|")
    for r in result["encodings"]:
        if "skipped" in r:
            print(f"| {r['encoding']} | skipped: {r['skipped'][:90]} | | | | |")
            continue
        mark = "" if r["backward"] else " (fwd)"
        cells = [r["encoding"], r["out_dim"], f"{r['ms_per_points']:.2f}{mark}", f"{r['ms_per_batch']:.2f}"]
        cells += [f"{100 * r['share_of_step']:.1f}", "yes" if r["meets_target"] else "NO"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encodings", nargs="*", default=None, help="default: every configs/encoding/*.yaml")
    parser.add_argument("--sh-degrees", nargs="*", type=int, default=[10, 20, 40, 100])
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per case (x5 at batch size)")
    parser.add_argument("--step-repeats", type=int, default=20, help="timed mae_tiny steps")
    parser.add_argument("--devices", nargs="*", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default="logs/benchmark_encodings.json")
    args = parser.parse_args(argv)
    devices = args.devices or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    with torch_threads(args.threads):  # restored after: main() may run inside another program
        report = run(args, devices)
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


def run(args: argparse.Namespace, devices: list[str]) -> dict[str, Any]:
    report = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "points": args.points,
        "batch_size": args.batch_size,
        "target_share_of_step": TARGET_SHARE_OF_STEP,
        "results": [],
    }
    m = report["machine"]
    print(f"Machine: {m['cpu']}, {report['threads']} threads, torch {m['torch']}, GPU: {m['device']}")
    for device in devices:
        result = bench_device(args, torch.device(device))
        report["results"].append(result)
        print_table(result, args)
    return report


if __name__ == "__main__":
    main()
