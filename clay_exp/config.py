"""Composing the project's Hydra configs from Python (tests, benchmarks, notebooks).

`python train.py ...` composes through ``@hydra.main``; code that needs the same config in-process
uses `compose_config`, which fills in what a Hydra run would (output folder, the chosen options).

Config folders outside the repository (an encoding or world kept in its own project) join through
the environment variable ``CLAY_EXP_CONFIG_DIRS`` (folders separated by ``os.pathsep``), which the
search-path plugin ``hydra_plugins/clay_exp_config_dirs`` adds to Hydra's search path wherever Hydra
starts: ``python train.py`` (sweeps included) and `compose_config` (the catalog, the probe, the
benchmarks). Each folder mirrors ``configs/``: ``<dir>/encoding/<name>.yaml`` is one more encoding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from omegaconf import DictConfig, open_dict

from clay_exp.resume import register_resolvers

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Extra config folders (os.pathsep-separated), searched after configs/ (hydra_plugins/clay_exp_config_dirs).
CONFIG_DIRS_ENV = "CLAY_EXP_CONFIG_DIRS"


def config_dirs() -> tuple[Path, ...]:
    """Every config folder: configs/ first, then those named in ``$CLAY_EXP_CONFIG_DIRS``."""
    value = os.environ.get(CONFIG_DIRS_ENV, "")
    return (CONFIG_DIR, *(Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p))


def config_options(group: str) -> list[str]:
    """The option names of a config group (e.g. every encoding), from its YAML files in every
    config folder (`config_dirs`)."""
    folders = [d / group for d in config_dirs() if (d / group).is_dir()]
    if not folders:
        raise ValueError(
            f"no config group {group!r}; groups: {sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())}"
        )
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})


def compose_config(
    overrides: Sequence[str] = (), output_dir: str | Path | None = None, *, hydra_node: bool = False
) -> DictConfig:
    """Compose ``configs/train.yaml`` with `overrides`, as ``python train.py <overrides>`` would.

    `output_dir` replaces the run folder Hydra would create (and the logs root). The Hydra config is
    registered as the current one, so ``${hydra:...}`` interpolations resolve; like a task under
    ``@hydra.main``, the returned config has no ``hydra`` node (unless `hydra_node`: what a sweeper
    or launcher sees). The extra config folders of ``$CLAY_EXP_CONFIG_DIRS`` are on the search path.
    """
    GlobalHydra.instance().clear()
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    if not hydra_node:
        # A task under @hydra.main sees the config without its `hydra` node; so does the caller here.
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def swept_options(overrides: Sequence[str], group: str) -> list[str]:
    """The options of config group `group` that ``python train.py -m <overrides>`` sweeps, as
    Hydra's basic sweeper expands ``hydra.sweeper.params.<group>``: a list ``a,b,c``, or a
    ``glob(*,exclude=[...])`` over the options Hydra's own config loader finds for the group."""
    cfg = compose_config(overrides, hydra_node=True)
    value = cfg.hydra.sweeper.params.get(group)
    if value is None:
        raise ValueError(f"{list(overrides)} sweeps no {group!r} (hydra.sweeper.params.{group} is unset)")
    (override,) = OverridesParser.create().parse_overrides([f"{group}={value}"])
    if isinstance(override.value(), Glob):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            options = GlobalHydra.instance().config_loader().get_group_options(group)
        return override.value().filter(options)
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(override.value())]
