"""The embedding probe: do a run's image features get better or worse with a location encoding?

For each trained run (its ``results.json``): rebuild its module from the recorded config, load its
checkpoint (``best`` or ``last``, ``torch.load(weights_only=True)``) and freeze it; embed chips with
every patch visible (the encoder's tokens, mean-pooled over the patches; a location token is left
out) twice: with the location **withheld** (``location_known`` false: the injection's ``missing``
path, what a downstream user without a location gets) and **given**. A closed-form linear probe
(`clay_exp.probe.linear`: ridge / ridge classifier, the same λ grid and folds for every run) per
label is fitted on the run's training chips and scored on its ``val`` and ``val_heldout`` chips.

Labels the worlds know (`labels_for`):

* ``data=earth``: ``zone`` the chip's majority Köppen–Geiger class over its class map (``Ocean``
  counts as a class: a mostly-sea chip's majority is sea), scored by accuracy; ``land`` the chip's
  land fraction (share of its class map on land), by R²;
* ``data=hierarchical_world``: ``z<level>`` the true factors of the chip's tile at that level
  (default z3, the 8 factors of its ``latents`` block), by R² pooled over the factors.

Metric keys: ``<set>/probe_<label>_<score>_<withheld|given>``, e.g. ``val/probe_zone_acc_withheld``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from clay_exp.module import LOCATION_KNOWN
from clay_exp.probe.linear import FOLDS, RIDGE_GRID, fit_linear_probe
from clay_exp.report.reliance import PROBE_FILE
from clay_exp.results import RunRecord

MODES = ("withheld", "given")
CHECKPOINT_CHOICES = ("best", "last")
#: Training chips the probes are fitted on (at most the run's training set).
N_TRAIN = 2048
#: Chips embedded per forward pass.
CHUNK = 256


@dataclass(frozen=True)
class ProbeSettings:
    """The budget, the same for every run."""

    n_train: int = N_TRAIN
    checkpoint: str = "best"
    level: int = 3  # hierarchical_world: the tile level whose factors are the label
    grid: tuple[float, ...] = RIDGE_GRID
    folds: int = FOLDS

    def __post_init__(self) -> None:
        if self.checkpoint not in CHECKPOINT_CHOICES:
            raise ValueError(f"checkpoint={self.checkpoint!r} is not one of {list(CHECKPOINT_CHOICES)}")
        if self.n_train < self.folds:
            raise ValueError(f"n_train={self.n_train!r} must be at least folds={self.folds}")


@dataclass
class Label:
    """A label of the world: per-chip values (class ids or real values) and how it is scored."""

    name: str
    score: str  # "acc" or "r2"
    num_classes: int | None
    values: Callable[[dict[str, Tensor]], Tensor]  # the batch -> (N,) or (N, K)


def labels_for(world: Any, level: int = 3) -> list[Label]:
    """The labels a world knows (ValueError for a world without any)."""
    from clay_exp.data.worlds.earth import EarthWorld
    from clay_exp.data.worlds.hierarchical import FACTORS_PER_LEVEL, HierarchicalWorld

    if isinstance(world, EarthWorld):
        ocean = world.koppen.ocean

        def classes(batch: dict[str, Tensor]) -> Tensor:
            return world.class_map(batch["lat"], batch["lon"]).flatten(1)

        return [
            Label("zone", "acc", len(world.zone_names), lambda b: classes(b).mode(dim=1).values),
            Label("land", "r2", None, lambda b: (classes(b) != ocean).double().mean(dim=1)),
        ]
    if isinstance(world, HierarchicalWorld):
        if level not in world.levels:
            raise ValueError(f"level={level} is not one of this world's levels {list(world.levels)}")
        i = list(world.levels).index(level)
        block = slice(i * FACTORS_PER_LEVEL, (i + 1) * FACTORS_PER_LEVEL)
        return [Label(f"z{level}", "r2", None, lambda b: b["latents"][:, block].double())]
    raise ValueError(
        f"the embedding probe knows labels of data=earth and data=hierarchical_world only, not "
        f"{type(world).__name__}"
    )


def checkpoint_path(run_dir: Path, record: RunRecord, which: str) -> Path:
    """The run's `which` checkpoint: the recorded file's name in the run's own folder (so a sweep
    that was copied or moved reads its own), else the recorded path."""
    recorded = (record.checkpoints or {}).get(which)
    candidates = [run_dir / "checkpoints" / Path(recorded).name, Path(recorded)] if recorded else []
    if which == "last":
        candidates.append(run_dir / "checkpoints" / "last.ckpt")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{run_dir}: no {which} checkpoint (recorded: {recorded})")


def load_module(run_dir: Path, record: RunRecord, which: str = "best") -> torch.nn.Module:
    """The run's LightningModule with the checkpoint's weights, frozen, in eval mode."""
    cfg = OmegaConf.create(record.config)
    module = instantiate(cfg.model, encoding=instantiate(cfg.encoding))  # never compiled here
    state = torch.load(checkpoint_path(run_dir, record, which), map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.requires_grad_(False)
    return module.eval()


@torch.no_grad()
def embed(module: Any, batch: dict[str, Tensor], withheld: bool) -> Tensor:
    """Mean-pooled encoder tokens ``(B, embed_dim)`` of the chips, every patch visible."""
    if withheld:
        batch = {**batch, LOCATION_KNOWN: torch.zeros(len(batch["image"]), dtype=torch.bool)}
    batch, known = module.known_locations(batch)
    location = module.encoding(batch) if module.encoding.out_dim > 0 else None
    model = module.model
    g = torch.Generator().manual_seed(0)  # all patches are kept: the draw only orders them
    with model.masking(0.0):
        latent, _, _, cond = model.forward_encoder(batch["image"], location, g, batch.get("time"), known)
    return latent[:, model.injection.prefix_count(cond) :].mean(dim=1).double()


def chunks(world: Any, n: int, size: int = CHUNK) -> Iterator[dict[str, Tensor]]:
    """The world's first `n` chips, in batches."""
    for start in range(0, n, size):
        yield world[list(range(start, min(n, start + size)))]


@dataclass
class ChipSets:
    """The chips of a run's data (shared by the runs of a sweep with the same data config)."""

    worlds: dict[str, Any]  # "train", "val", "val_heldout" (where served) -> dataset
    batches: dict[str, list[dict[str, Tensor]]] = field(default_factory=dict)


def chip_sets(data_cfg: Any, n_train: int) -> ChipSets:
    """The training chips (the first `n_train`) and every validation chip of a run's data config."""
    datamodule = instantiate(data_cfg)
    datamodule.setup("fit")
    worlds = dict(getattr(datamodule, "datasets", {}))
    if "train" not in worlds:
        raise ValueError(f"{type(datamodule).__name__} has no generated world (`datasets`): nothing to label")
    sets = ChipSets(worlds)
    for name, world in worlds.items():
        n = min(n_train, len(world)) if name == "train" else len(world)
        sets.batches[name] = list(chunks(world, n))
    return sets


def probe_run(
    module: Any, sets: ChipSets, settings: ProbeSettings
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every label × mode: fit on the training chips, score on each validation set. Returns the
    metrics and the chosen λ per label and mode."""
    labels = labels_for(sets.worlds["train"], settings.level)
    values = {name: {lab.name: torch.cat([lab.values(b) for b in batches]) for lab in labels}
              for name, batches in sets.batches.items()}  # fmt: skip
    metrics: dict[str, float] = {}
    chosen: dict[str, float] = {}
    for mode in MODES:
        features = {
            name: torch.cat([embed(module, b, withheld=mode == "withheld") for b in batches])
            for name, batches in sets.batches.items()
        }
        for lab in labels:
            probe = fit_linear_probe(
                features["train"], values["train"][lab.name], lab.num_classes, settings.grid, settings.folds
            )
            chosen[f"{lab.name}_{mode}"] = probe.lam
            for name in (n for n in features if n != "train"):
                key = f"{name}/probe_{lab.name}_{lab.score}_{mode}"
                metrics[key] = probe.score(features[name], values[name][lab.name])
    return metrics, {"lambda": chosen}


def write_run_probe(
    run_dir: Path, metrics: dict[str, float], facts: dict[str, Any], settings: ProbeSettings
) -> Path:
    """``<run>/embedding_probe.json``: the metrics, the settings, the chosen λ."""
    path = run_dir / PROBE_FILE
    payload = {"metrics": metrics, "settings": asdict(settings), **facts}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# -- every run of one or more sweeps ----------------------------------------------------------------
#: Data settings that do not change the chips (left out of the key that shares them between runs).
_NOT_CHIPS = ("shuffle_seed", "num_workers", "pin_memory", "batch_size")


def _chips_key(data_cfg: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in data_cfg.items() if k not in _NOT_CHIPS}, sort_keys=True, default=str)


def probe_sweeps(
    dirs: list[Path],
    settings: ProbeSettings = ProbeSettings(),
    write_runs: bool = True,
    log: Callable[[str], None] = print,
) -> list[Any]:
    """Probe every completed run below `dirs`; returns the report's runs with the probe's metrics
    added (a run whose probe failed becomes ``failed`` with the reason; the others are listed as they
    are). With `write_runs`, each probed run gets its ``embedding_probe.json``."""
    from dataclasses import replace

    from clay_exp.report import load_runs

    runs = load_runs(*dirs)
    chips: dict[str, ChipSets] = {}
    out = []
    for run in runs:
        if run.status != "completed":
            out.append(run)
            continue
        try:
            record = RunRecord.load(run.path)
            key = _chips_key(record.config["data"])
            if key not in chips:
                chips[key] = chip_sets(OmegaConf.create(record.config["data"]), settings.n_train)
            module = load_module(run.path, record, settings.checkpoint)
            metrics, facts = probe_run(module, chips[key], settings)
        except Exception as error:  # listed as failed in the report; the other runs go on
            message = f"embedding probe: {type(error).__name__}: {error}"
            log(f"{run.path.name}: FAILED {message}")
            out.append(replace(run, status="failed", error=message))
            continue
        if write_runs:
            write_run_probe(run.path, metrics, facts, settings)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.startswith("val/"))
        log(f"{run.path.name}: {shown}")
        out.append(replace(run, metrics={**run.metrics, **metrics}))
    return out
