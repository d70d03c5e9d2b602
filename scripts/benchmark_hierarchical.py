"""Benchmark the hierarchical tile embeddings: memory and time at any zoom, share of a training step.

Three tables, printed and written to one JSON file:

1. ``max_zoom`` sweep (10, 15, 20, 24; four levels ``[0, z/3, 2z/3, z]``, 16 dims each): parameter
   memory and forward+backward time of the encoding alone on a batch of 64, with hashed deep levels
   (``max_rows`` 2^16) and, where it fits in ``--dense-limit-gib``, all levels dense.
2. The encoding's share of one ``mae_tiny`` training step on the CPU (forward, backward, gradient
   clipping, optimizer step), for the ``hierarchical`` and ``hierarchical_hashed`` configs against
   ``encoding=none``, with the tables' AdamW fused (what the encoding's groups ask for) and for-loop
   (torch's CPU default).
   "parts" = the encoding's own forward+backward, gradient clipping and optimizer work over the full
   step; "added" = (step with it - step with ``none``) / step with it, which also counts cache effects
   and the noise of two medians. Target: under 5 %.
3. Hash collisions at z20 for N uniformly sampled points: measured vs ``1 - (1 - 1/rows)^(N-1)``.

Times are medians over ``--repeats`` runs with ``--threads`` torch threads (1 by default: on a shared
machine one thread gives the steadiest numbers); CPU time is reported beside wall time.

    python scripts/benchmark_hierarchical.py                       # -> benchmarks/hierarchical.json
    python scripts/benchmark_hierarchical.py --output /tmp/h.json --repeats 50
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from clay_exp.benchmarking import interleaved_rounds, machine, torch_threads, wall_and_cpu_ms, write_json
from clay_exp.config import CONFIG_DIR, compose_config
from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.tiles import MERCATOR_MAX_LAT
from clay_exp.train import build_module

ROOT = CONFIG_DIR.parent

BATCH = 64
DIM = 16
MAX_ROWS = 2**16


def uniform_points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lat = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * MERCATOR_MAX_LAT
    lon = 360 * torch.rand(n, generator=g, dtype=torch.float64) - 180
    return lat, lon


def chain_levels(max_zoom: int) -> list[int]:
    return sorted({0, round(max_zoom / 3), round(2 * max_zoom / 3), max_zoom})


# -- 1. the max_zoom sweep ---------------------------------------------------------------------------
def zoom_sweep(zooms: list[int], dense_limit_gib: float, repeats: int) -> list[dict[str, Any]]:
    lat, lon = uniform_points(BATCH, seed=0)
    batch = {"lat": lat, "lon": lon}
    rows = []
    for max_zoom in zooms:
        levels = chain_levels(max_zoom)
        for kind, max_rows in (("hashed", MAX_ROWS), ("dense", 4**max_zoom)):
            table_rows = [min(4**z, max_rows) for z in levels]
            param_bytes = 4 * DIM * sum(table_rows)
            row: dict[str, Any] = {
                "max_zoom": max_zoom,
                "levels": levels,
                "tables": kind,
                "hashed_levels": [z for z in levels if 4**z > max_rows],
                "parameters": DIM * sum(table_rows),
                "param_mib": param_bytes / 2**20,
            }
            if param_bytes > dense_limit_gib * 2**30:
                row["skipped"] = (
                    f"needs {param_bytes / 2**30:.3g} GiB of parameters (limit {dense_limit_gib})"
                )
                rows.append(row)
                continue
            enc = HierarchicalTileEncoding(
                levels=levels, max_zoom=max_zoom, dim_per_level=DIM, max_rows=max_rows
            )

            def forward_backward(enc: HierarchicalTileEncoding = enc) -> None:
                enc.zero_grad(set_to_none=True)
                enc(batch).sum().backward()

            row.update(wall_and_cpu_ms(forward_backward, repeats))
            rows.append(row)
            del enc
    return rows


# -- 2. share of a mae_tiny training step --------------------------------------------------------------
def training_step_share(repeats: int) -> list[dict[str, Any]]:
    lat, lon = uniform_points(BATCH, seed=1)
    image = torch.randn(BATCH, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    batch = {"image": image, "lat": lat, "lon": lon}
    # (encoding, whether its tables get the fused optimizer kernel, as its param groups ask)
    variants = [("none", True)] + [
        (enc, fused) for fused in (True, False) for enc in ("hierarchical", "hierarchical_hashed")
    ]
    steps: dict[tuple[str, bool], Callable[[], None]] = {}
    modules = {}
    for encoding, fused in variants:
        cfg = compose_config([f"encoding={encoding}", "model.scheduler=constant"])
        torch.manual_seed(0)
        module = build_module(cfg)
        optimizer = module.configure_optimizers()["optimizer"]
        for group in optimizer.param_groups:
            if str(group.get("name", "")).startswith("encoding"):
                group["fused"] = fused
        clip = float(cfg.trainer.gradient_clip_val)

        def step(module=module, optimizer=optimizer, clip=clip) -> None:
            optimizer.zero_grad(set_to_none=True)
            module(batch).backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
            optimizer.step()

        steps[encoding, fused] = step
        modules[encoding, fused] = (module, optimizer, clip)
    # Interleaved rounds, so that load from elsewhere on a shared machine hits every variant alike.
    for step in steps.values():
        for _ in range(3):  # warm-up
            step()
    measures = {
        key: (lambda step=step: wall_and_cpu_ms(step, repeats=1, warmup=0)) for key, step in steps.items()
    }
    rounds = interleaved_rounds(measures, repeats)
    step_ms = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in rounds.items()}

    results = []
    for (encoding, fused), (module, optimizer, clip) in modules.items():
        if encoding == "none":
            continue
        encoder = module.encoding

        def encoding_forward_backward(encoder=encoder) -> None:
            encoder.zero_grad(set_to_none=True)
            encoder(batch).sum().backward()

        parts = {"forward_backward": wall_and_cpu_ms(encoding_forward_backward, repeats)}
        # The optimizer's work on the encoding's own groups alone (same optimizer class and settings).
        enc_groups = [g for g in optimizer.param_groups if str(g.get("name", "")).startswith("encoding")]
        enc_optimizer = type(optimizer)([{**g} for g in enc_groups])
        parts["optimizer_step"] = wall_and_cpu_ms(enc_optimizer.step, repeats)
        clip_encoding = lambda e=encoder, c=clip: torch.nn.utils.clip_grad_norm_(e.parameters(), c)  # noqa: E731
        parts["clip"] = wall_and_cpu_ms(clip_encoding, repeats)
        full, base = step_ms[encoding, fused], step_ms["none", True]
        results.append(
            {
                "encoding": encoding,
                "tables_fused_adamw": fused,
                "step_ms_none": base,
                "step_ms": full,
                "encoding_parts_ms": parts,
                # what the encoding costs in a step, measured two ways
                "share_parts": {k: sum(part[k] for part in parts.values()) / full[k] for k in full},
                "share_added": {k: (full[k] - base[k]) / full[k] for k in full},
                "encoding_parameters": sum(p.numel() for p in encoder.parameters()),
            }
        )
    return results


# -- 3. collisions ------------------------------------------------------------------------------------
def collisions(point_counts: list[int], zoom: int = 20) -> list[dict[str, Any]]:
    enc = HierarchicalTileEncoding(levels=[zoom], dim_per_level=1, max_rows=MAX_ROWS)
    rows = []
    for n in point_counts:
        lat, lon = uniform_points(n, seed=n)
        x, y = enc.tile_indices(lat, lon)[zoom]
        distinct = len(torch.unique(torch.stack([x, y], dim=-1), dim=0))
        rows.append(
            {
                "zoom": zoom,
                "rows": MAX_ROWS,
                "points": n,
                "distinct_tiles": distinct,
                "measured": enc.collision_rates(lat, lon)[zoom],
                "expected": enc.expected_collision_rate(distinct, MAX_ROWS),
            }
        )
    return rows


# -- report -------------------------------------------------------------------------------------------
def print_report(report: dict[str, Any]) -> None:
    print(
        f"machine: {report['machine']['description']}, {report['machine']['torch_threads']} torch thread(s)"
    )
    print(f"\nencoding alone, batch {BATCH}, {DIM} dims per level, max_rows 2^16 when hashed")
    print("| max_zoom | levels | tables | hashed levels | parameters | param MiB | fwd+bwd ms (wall / CPU) |")
    print("|---|---|---|---|---|---|---|")
    for r in report["zoom_sweep"]:
        time_cell = r.get("skipped") or f"{r['wall_ms']:.2f} / {r['cpu_ms']:.2f}"
        print(
            f"| {r['max_zoom']} | {r['levels']} | {r['tables']} | {r['hashed_levels'] or '-'} | "
            f"{r['parameters']:,} | {r['param_mib']:,.1f} | {time_cell} |"
        )
    print(f"\nshare of a mae_tiny training step (batch {BATCH}, CPU; forward, backward, clip, optimizer)")
    print("| encoding | table AdamW | step ms (none, with) | enc fwd+bwd, clip, AdamW ms | share |")
    print("|---|---|---|---|---|")
    for r in report["training_step"]:
        parts = r["encoding_parts_ms"]
        print(
            f"| {r['encoding']} | {'fused' if r['tables_fused_adamw'] else 'for-loop'} | "
            f"{r['step_ms_none']['cpu_ms']:.1f}, {r['step_ms']['cpu_ms']:.1f} | "
            f"{parts['forward_backward']['cpu_ms']:.2f}, {parts['clip']['cpu_ms']:.2f}, "
            f"{parts['optimizer_step']['cpu_ms']:.2f} | "
            f"{100 * r['share_parts']['cpu_ms']:.1f} %, {100 * r['share_added']['cpu_ms']:.1f} % |"
        )
    print("\nhash collisions at z20 into 2^16 rows, uniform points")
    print("| points | distinct tiles | measured | expected 1-(1-1/R)^(N-1) |")
    print("|---|---|---|---|")
    for r in report["collisions"]:
        print(f"| {r['points']:,} | {r['distinct_tiles']:,} | {r['measured']:.4f} | {r['expected']:.4f} |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "hierarchical.json")
    parser.add_argument("--zooms", type=int, nargs="+", default=[10, 15, 20, 24])
    parser.add_argument("--dense-limit-gib", type=float, default=2.0, help="largest dense table set to try")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collision-points", type=int, nargs="+", default=[3_200, 20_000, 100_000])
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats={args.repeats} and --threads={args.threads} must be >= 1")
    with torch_threads(args.threads):  # restored after: main() may run inside another program
        report = run(args)
    print_report(report)
    print(f"\nwritten to {write_json(args.output, report)}")
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "benchmark": "hierarchical",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "zoom_sweep": zoom_sweep(args.zooms, args.dense_limit_gib, args.repeats),
        "training_step": training_step_share(args.repeats),
        "collisions": collisions(args.collision_points),
    }


if __name__ == "__main__":
    main()
