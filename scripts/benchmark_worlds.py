"""How fast each world makes chips on one CPU core, next to what a mae_tiny training step consumes.

Every world is built from its config (``configs/data/<name>.yaml``, batch 64, 32 x 32 x 4 chips) and
read through its training DataLoader on one thread; the MAE step is forward + backward + AdamW on one
batch of 64. With the demo rasters present, ``geotiff`` is measured read live and from its chip
cache (``data.cache=true``; the first run builds it, counted in the set-up time). Prints a table and
writes JSON.

    python scripts/benchmark_worlds.py [--batches 30] [--out logs/benchmarks/worlds.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from clay_exp.benchmarking import (
    make_optimizer,
    torch_threads,
    train_batches,
    train_steps,
    world_throughput,
    write_json,
)
from clay_exp.config import CONFIG_DIR, compose_config
from clay_exp.train import build_module

ROOT = CONFIG_DIR.parent
DEMO_GEOTIFFS = ROOT / "data" / "demo_geotiffs"
#: (label, overrides) of the worlds measured.
WORLDS = [
    ("synthetic", ["data=synthetic"]),
    ("hierarchical_world", ["data=hierarchical_world"]),
    ("hierarchical_world (land)", ["data=hierarchical_world", "data.world.locations=land"]),
    ("hierarchical_world (region split)", ["data=hierarchical_world", "data.split=region"]),
    ("earth (land)", ["data=earth"]),
    ("earth (anywhere)", ["data=earth", "data.world.locations=sphere"]),
]


def mae_step_ms(steps: int) -> float:
    """Milliseconds per mae_tiny training step (sincos encoding) at batch 64 (benchmarking.train_steps)."""
    cfg = compose_config(["logger=csv"], ROOT / "logs")
    module = build_module(cfg)
    times = train_steps(module, make_optimizer(module), train_batches(cfg, steps + 3), torch.device("cpu"), 3)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=30, help="timed batches per world")
    parser.add_argument("--steps", type=int, default=10, help="timed MAE steps")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "benchmarks" / "worlds.json")
    args = parser.parse_args(argv)
    with torch_threads(1):  # one core, as one DataLoader worker would have; restored after
        payload = run(args)
    print(f"\nwritten to {write_json(args.out, payload)}")
    return payload


def run(args: argparse.Namespace) -> dict:
    worlds = list(WORLDS)
    if any(DEMO_GEOTIFFS.glob("*.tif")):  # reading rasters rather than generating; for comparison
        geotiff = ["data=geotiff", f"data.paths={DEMO_GEOTIFFS}"]
        worlds.append(("geotiff (demo rasters)", geotiff))
        # the same chips from the chip cache (built once, in the set-up time, then memory-mapped)
        cache_dir = Path(tempfile.gettempdir()) / "clay_exp_data_cache"
        worlds.append(("geotiff (cached)", [*geotiff, "data.cache=true", f"data.cache_dir={cache_dir}"]))
    step_ms = mae_step_ms(args.steps)
    rows = []
    for label, overrides in worlds:
        result = world_throughput(overrides, args.batches)
        result["times_faster_than_mae_tiny"] = step_ms / result["ms_per_batch"]
        rows.append({"world": label, "overrides": overrides, **result})

    print(f"mae_tiny training step, batch 64: {step_ms:.1f} ms ({64 / step_ms * 1000:.0f} samples/s)\n")
    print(f"{'world':<36} {'samples/s':>10} {'ms/batch':>9} {'x MAE':>7} {'set-up s':>9}")
    for r in rows:
        print(
            f"{r['world']:<36} {r['samples_per_s']:>10.0f} {r['ms_per_batch']:>9.1f} "
            f"{r['times_faster_than_mae_tiny']:>7.1f} {r['setup_s']:>9.1f}"
        )
    return {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 1 thread",
        "torch": torch.__version__,
        "batch_size": 64,
        "chip": "4 x 32 x 32",
        "mae_tiny_step_ms": step_ms,
        "worlds": rows,
    }


if __name__ == "__main__":
    main()
