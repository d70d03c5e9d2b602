"""``python scripts/floors.py <hydra overrides>``: floors, coverage and level alignment of a study design.

Composes the config as ``train.py`` would (e.g. ``data=hierarchical_world data.world.levels=[2,6]
data.chip_size=16 data.bands=2 model.backbone.mask_ratio=0.875 data.train_size=4096``), prints a
markdown report and writes it as JSON (``--out``, default ``logs/floors/<timestamp>.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clay_exp.config import compose_config
from clay_exp.design.coverage import (
    LevelCoverage,
    clustered_locations,
    coverage,
    expected_uniform_coverage,
    level_alignment,
    set_locations,
)
from clay_exp.design.floors import FloorReport, estimators
from clay_exp.design.from_config import coverage_sets_from_config, floors_from_config, world_from_config
from clay_exp.design.hierarchical_floors import memorised_level_floor
from clay_exp.design.resolution import relative_change


def _pm(value: float | None, se: float | None = None, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if se is None else f"{value:.{digits}f} ± {se:.{digits}f}"


def floors_markdown(report: FloorReport) -> str:
    units = "norm-pix" if report.norm_pix_loss else "raw"
    lines = [
        f"### Floors: {report.world}, chips {report.chip_shape}, patch {report.patch_size}, "
        f"mask {report.mask_ratio}",
        "",
        f"| floor | known levels | raw MSE closed form | raw MSE MC | loss MC ({units}) | gap from none |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for f in report.floors:
        known = "–" if f.known_levels is None else ",".join(f"z{z}" for z in f.known_levels) or "∅"
        lines.append(
            f"| {f.name} | {known} | {_pm(f.raw_closed)} | {_pm(f.raw_mc, f.raw_mc_se)} | "
            f"{_pm(f.loss_mc, f.loss_mc_se)} | "
            f"{_pm(f.extra.get('gap_from_first'), f.extra.get('gap_from_first_se'))} |"
        )
    lines += ["", f"Estimator: {estimators(report)}; ± one MC standard error; gaps paired on chips."]
    return "\n".join(lines)


def coverage_markdown(title: str, levels: Sequence[LevelCoverage]) -> str:
    lines = [
        f"### Coverage: {title}",
        "",
        "| zoom | tiles | occupied | chips/tile (all) | q25 / median / q75 (occupied) | chip's own tile "
        "| ≥1 | ≥10 | ≥100 | val seen |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        q = " / ".join(f"{v:g}" for v in c.quartiles_occupied)
        seen = "–" if c.val_seen is None else f"{c.val_seen:.3f}"
        lines.append(
            f"| z{c.zoom} | {c.tiles:,} | {c.occupied:,} | {c.mean_per_tile:.3g} | {q} | {c.chip_median:g} | "
            f"{c.share_ge[1]:.3g} | {c.share_ge[10]:.3g} | {c.share_ge[100]:.3g} | {seen} |"
        )
    return "\n".join(lines)


def encoding_resolution(cfg: Any, distances_km: Sequence[float], seed: int) -> dict[float, float]:
    """The composed encoding's relative change (`relative_change`) at each distance, from the val chips."""
    import hydra
    import torch

    lat, lon = set_locations(hydra.utils.instantiate(cfg.data), "val")
    torch.manual_seed(int(cfg.seed))  # the encoding as a run of this seed initialises it
    return relative_change(hydra.utils.instantiate(cfg.encoding), lat, lon, distances_km, seed=seed)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default logs/floors/<time>.json)")
    p.add_argument("--chips", type=int, default=1024, help="hierarchical world: chips for the floors")
    p.add_argument("--draws", type=int, default=16, help="hierarchical world: posterior draws per chip")
    p.add_argument("--fit-chips", type=int, default=4096, help="other worlds: chips to fit the predictor")
    p.add_argument("--eval-chips", type=int, default=512, help="other worlds: chips to evaluate it")
    p.add_argument(
        "--zooms", type=int, nargs="*", default=None, help="coverage zooms (default: world + encoding levels)"
    )
    p.add_argument(
        "--encoding-levels",
        type=int,
        nargs="*",
        default=None,
        help="encoding levels for the coverage (default: the composed encoding's levels, else 0 5 10 15)",
    )
    p.add_argument(
        "--sites", type=int, default=0, help="also coverage of a sites sampling with this many sites"
    )
    p.add_argument("--site-zoom", type=int, default=6)
    p.add_argument("--no-floors", action="store_true", help="coverage only (no chips generated)")
    p.add_argument(
        "--resolution-km",
        type=float,
        nargs="*",
        default=None,
        help="also the composed encoding's relative change between val chips and places this many km "
        "away (clay_exp/design/resolution.py), e.g. 0.1 1 10 100",
    )
    p.add_argument("--max-memorised-tiles", type=int, default=1024, help="levels to test for memorising")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path("logs/floors") / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    cfg = compose_config(["logger=csv", *args.overrides], output_dir=out.parent / "run")
    world_levels = list(OmegaConf.select(cfg, "data.world.levels", default=None) or [])
    encoding_levels = args.encoding_levels
    if encoding_levels is None:  # e.g. a study arm's levels (z0, z3, z6), not the proposal's default
        encoding_levels = list(cfg.get("encoding", {}).get("levels", None) or [0, 5, 10, 15])
    zooms = args.zooms or sorted({*world_levels, *encoding_levels})
    result: dict[str, Any] = {"overrides": list(args.overrides), "zooms": zooms}
    sections = []
    if "world" not in cfg.data and not args.no_floors:  # real rasters (data=geotiff, scenes): no truth
        sections.append(f"Floors need a generated world; data={cfg.get('data_name', '?')}: coverage only.")
        args.no_floors = True
    if not args.no_floors:
        report = floors_from_config(
            cfg,
            chips=args.chips,
            draws=args.draws,
            fit_chips=args.fit_chips,
            eval_chips=args.eval_chips,
            seed=args.seed,
        )
        result["floors"] = report.to_dict()
        sections.append(floors_markdown(report))
        if report.world == "HierarchicalWorld":
            # Levels with few tiles: a none model can memorise their vectors and recognise them.
            world = world_from_config(cfg, length=min(args.chips, 512))
            bb = cfg.model.backbone
            memo = {}
            for z in (z for z in world_levels if z > 0 and 4**z <= args.max_memorised_tiles):
                memo[z] = memorised_level_floor(
                    world, int(bb.patch_size), float(bb.mask_ratio), z, chips=len(world), seed=args.seed
                )
            result["memorised_none"] = memo
            if memo:
                sections.append(
                    "None with the level's tile vectors memorised (raw MSE, mixture posterior; "
                    "compare the Gaussian rows' raw column): "
                    + ", ".join(
                        f"z{z}: {m['raw']:.4f} ± {m['raw_se']:.4f} (posterior on true tile "
                        f"{m['posterior_on_true_tile']:.2f})"
                        for z, m in memo.items()
                    )
                )
    sets = coverage_sets_from_config(cfg, zooms)
    n_train = int(cfg.data.train_size)
    result["coverage"] = {name: [c.to_dict() for c in levels] for name, levels in sets.items()}
    for name, levels in sets.items():
        sections.append(coverage_markdown(f"{n_train} training chips, validation set `{name}`", levels))
    if "world" in cfg.data:  # a generated world's chips may cover the sphere; a raster's cannot
        uniform = expected_uniform_coverage(n_train, zooms)
        result["uniform_expectation"] = [u.to_dict() for u in uniform]
        sections.append(
            "Uniform on the sphere (closed form), share of tiles ≥1 / val seen: "
            + ", ".join(f"z{u.zoom} {u.share_ge[1]:.3g} / {u.val_seen:.3g}" for u in uniform)
        )
    if args.sites:
        lat, lon = clustered_locations(n_train, args.sites, args.site_zoom, seed=args.seed)
        vlat, vlon = clustered_locations(1024, args.sites, args.site_zoom, seed=args.seed, offset=n_train)
        levels = coverage(lat, lon, zooms, vlat, vlon)
        result["sites_coverage"] = {
            "sites": args.sites,
            "site_zoom": args.site_zoom,
            "levels": [c.to_dict() for c in levels],
        }
        sections.append(
            coverage_markdown(f"sites prototype, {args.sites} sites at z{args.site_zoom}", levels)
        )
    if world_levels:
        result["alignment"] = level_alignment(world_levels, encoding_levels)
        sections.append(
            "Alignment (world level → coarsest encoding level that can hold it, rows per world tile): "
            + ", ".join(
                f"z{a['world_level']} → z{a['coarsest_encoding_level']} ({a['rows_per_world_tile']})"
                + (" exact" if a["exact"] else "")
                for a in result["alignment"]
            )
        )
    if args.resolution_km:
        change = encoding_resolution(cfg, args.resolution_km, args.seed)
        result["resolution"] = {"encoding": cfg.get("encoding_name"), "relative_change": change}
        sections.append(
            f"Resolution of {cfg.get('encoding_name', '?')} (output change at d km / between random "
            "val chips): " + ", ".join(f"{d:g} km {v:.3g}" for d, v in change.items())
        )
    print("\n\n".join(sections))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}")
    return 0
