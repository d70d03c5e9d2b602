"""Information floors beside a study's learned losses, computed once and cached in the report folder.

The floors (`clay_exp.design.floors`) are the ideal predictor's masked-patch loss without location
(``none``), with the true location information (``location``) and, on `hierarchical_world`, with
only some levels known: what the MAE could reach at convergence. Beside the learned losses they say
how far the training budget is from convergence (learned − floor).

Cost decides which worlds get them here: on `hierarchical_world` the floors have a closed form and a
Monte Carlo over `FLOOR_CHIPS` chips (256 chips, 16 draws: ~4 s on an idle CPU thread, MC standard
error ~0.0006). Other worlds need the fitted best linear predictor (``linear_floors``: ~45 s on one
thread at 1,024 fitting chips, and at that size an upper bound inflated by estimation error), so the
report does not compute them;
``scripts/floors.py <the study's overrides> --out x.json`` does, and ``--floors-json x.json`` hands
them to the report. Each computation is cached as ``floors-<key>.json`` in the report's folder, the
key a hash of the world's config, the MAE's patch size, mask ratio and norm-pix setting, the chips,
draws and seed: re-running the report reads the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clay_exp.design.floors import Floor, FloorReport
from clay_exp.report.compare import Comparison
from clay_exp.report.metric import Metric
from clay_exp.report.runs import per_seed
from clay_exp.report.study import StudyResult
from clay_exp.results import write_json_atomic

#: Monte-Carlo chips and posterior draws of the hierarchical floors in the report, and their seed.
FLOOR_CHIPS, FLOOR_DRAWS, FLOOR_SEED = 256, 16, 0
#: Worlds whose floors the report computes itself (closed form, a few seconds).
CHEAP_WORLDS = ("HierarchicalWorld",)


def _world_target(config: dict[str, Any]) -> str | None:
    world = (config.get("data") or {}).get("world")
    return str(world.get("_target_")) if isinstance(world, dict) and world.get("_target_") else None


def _mae_settings(config: dict[str, Any]) -> dict[str, Any]:
    bb = (config.get("model") or {}).get("backbone") or {}
    return {k: bb.get(k) for k in ("patch_size", "mask_ratio", "norm_pix_loss")}


def floors_cache_key(config: dict[str, Any], chips: int, draws: int, seed: int) -> str:
    """What the floors depend on, hashed: the world's config, the MAE's masking, the MC settings."""
    what = {"data": config.get("data"), "mae": _mae_settings(config), "mc": [chips, draws, seed]}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def floor_report_from_dict(payload: dict[str, Any]) -> FloorReport:
    """A `FloorReport` from its JSON (``FloorReport.to_dict``, or scripts/floors.py's output file)."""
    data = payload.get("floors", payload) if "world" not in payload else payload
    fields = {k: v for k, v in data.items() if k != "floors"}
    return FloorReport(**fields, floors=[Floor(**f) for f in data["floors"]])


def study_floors(
    config: dict[str, Any],
    cache_dir: str | Path,
    chips: int = FLOOR_CHIPS,
    draws: int = FLOOR_DRAWS,
    seed: int = FLOOR_SEED,
) -> tuple[FloorReport | None, str]:
    """The floors of a run's world (cached in `cache_dir`) and a line saying where they come from."""
    target = _world_target(config)
    if target is None:
        return None, "Not computed: the runs' data is not a generated world"
    world = target.rsplit(".", 1)[-1]
    if world not in CHEAP_WORLDS:
        return None, (
            f"Not computed for {world}: its floors need the fitted linear estimator (~45 s on one "
            "CPU thread at 1,024 fitting chips, a loose upper bound at that size); run "
            "`scripts/floors.py <the study's overrides> --out floors.json` and pass "
            "`--floors-json floors.json`"
        )
    key = floors_cache_key(config, chips, draws, seed)
    cache = Path(cache_dir) / f"floors-{key}.json"
    if cache.is_file():
        return floor_report_from_dict(json.loads(cache.read_text())), f"Read from `{cache.name}` (cached)"
    from omegaconf import OmegaConf

    from clay_exp.design.from_config import floors_from_config

    report = floors_from_config(OmegaConf.create(config), chips=chips, draws=draws, seed=seed)
    write_json_atomic(cache, report.to_dict())
    return report, f"Computed on {chips} chips ({draws} posterior draws each), cached as `{cache.name}`"


def attach_floors(
    comparison: Comparison,
    cache_dir: str | Path,
    chips: int = FLOOR_CHIPS,
    draws: int = FLOOR_DRAWS,
    floors_json: str | Path | None = None,
) -> None:
    """Give every study of `comparison` its floors (`StudyResult.floors`, `floors_note`).

    `floors_json` (a scripts/floors.py output or a cached file) is used for every study instead.
    A world whose floors cannot be computed gets the error as its note; the report is still written.
    """
    given = floor_report_from_dict(json.loads(Path(floors_json).read_text())) if floors_json else None
    for result in comparison.studies:
        if given is not None:
            result.floors, result.floors_note = given, f"Read from `{floors_json}`"
        elif result.config:
            try:
                result.floors, result.floors_note = study_floors(result.config, cache_dir, chips, draws)
            except Exception as error:  # a world this code cannot build: the report goes on without
                why = (str(error).strip().splitlines() or [""])[-1]
                result.floors_note = f"Not computed: computing them failed ({type(error).__name__}: {why})"
        else:
            result.floors_note = "Not computed: no completed run to take the world's config from"


@dataclass
class FloorDistance:
    """An arm's mean learned loss on `metric` and its distance to each floor (learned − floor)."""

    arm: str
    metric: str
    learned: float
    distance: dict[str, float]


def floor_distances(
    result: StudyResult, floor_names: tuple[str, ...] = ("none", "location")
) -> list[FloorDistance]:
    """Learned − floor for every arm and study metric (floors in the model's loss units)."""
    if result.floors is None or result.study is None:
        return []
    floors = {f.name: f.loss_mc for f in result.floors.floors if f.name in floor_names}
    out = []
    for metric in result.study.metrics:
        for row in result.section.rows:
            values = list(per_seed(row.runs, Metric(metric)).values())
            if values:
                mean = float(sum(values) / len(values))
                dist = {name: mean - f if math.isfinite(f) else math.nan for name, f in floors.items()}
                out.append(FloorDistance(row.label, metric, mean, dist))
    return out
