"""How fast each world makes chips on one CPU core, next to what a mae_tiny training step consumes.

Every world is built from its config (``configs/data/<name>.yaml``, batch 64, 32 x 32 x 4 chips) and
read through its training DataLoader on one thread; the MAE step is forward + backward + AdamW on one
batch of 64. Prints a table and writes JSON.

    python scripts/benchmark_worlds.py [--batches 30] [--out logs/benchmarks/worlds.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from clay_exp.config import compose_config

ROOT = Path(__file__).resolve().parent.parent
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


def samples_per_second(overrides: list[str], batches: int) -> dict[str, float]:
    """Set-up time and chips per second of a world's training DataLoader."""
    cfg = compose_config(["logger=csv", *overrides, f"data.train_size={64 * (batches + 2)}"], ROOT / "logs")
    started = time.perf_counter()
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    setup_s = time.perf_counter() - started
    for _ in range(2):  # warm-up
        next(loader)
    started = time.perf_counter()
    chips = sum(next(loader)["image"].shape[0] for _ in range(batches))
    elapsed = time.perf_counter() - started
    return {"setup_s": setup_s, "samples_per_s": chips / elapsed, "ms_per_batch_64": 1000 * elapsed / batches}


def mae_step_ms(steps: int) -> float:
    """Milliseconds per mae_tiny training step (sincos encoding) at batch 64."""
    cfg = compose_config(["logger=csv", "model.scheduler=constant"], ROOT / "logs")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    module = instantiate(cfg.model, encoding=instantiate(cfg.encoding))
    optimizer = module.configure_optimizers()["optimizer"]

    def step() -> None:
        optimizer.zero_grad()
        module(batch).backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=30, help="timed batches per world")
    parser.add_argument("--steps", type=int, default=10, help="timed MAE steps")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "benchmarks" / "worlds.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    worlds = list(WORLDS)
    if any(DEMO_GEOTIFFS.glob("*.tif")):  # reading rasters rather than generating; for comparison
        worlds.append(("geotiff (demo rasters)", ["data=geotiff", f"data.paths={DEMO_GEOTIFFS}"]))
    step_ms = mae_step_ms(args.steps)
    rows = []
    for label, overrides in worlds:
        result = samples_per_second(overrides, args.batches)
        result["times_faster_than_mae_tiny"] = step_ms / result["ms_per_batch_64"]
        rows.append({"world": label, "overrides": overrides, **result})

    print(f"mae_tiny training step, batch 64: {step_ms:.1f} ms ({64 / step_ms * 1000:.0f} samples/s)\n")
    print(f"{'world':<36} {'samples/s':>10} {'ms/batch':>9} {'x MAE':>7} {'set-up s':>9}")
    for r in rows:
        print(
            f"{r['world']:<36} {r['samples_per_s']:>10.0f} {r['ms_per_batch_64']:>9.1f} "
            f"{r['times_faster_than_mae_tiny']:>7.1f} {r['setup_s']:>9.1f}"
        )
    payload = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 1 thread",
        "torch": torch.__version__,
        "batch_size": 64,
        "chip": "4 x 32 x 32",
        "mae_tiny_step_ms": step_ms,
        "worlds": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
