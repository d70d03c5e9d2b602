"""Composing the project's Hydra configs from Python (tests, benchmarks, notebooks).

`python train.py ...` composes through ``@hydra.main``; code that needs the same config in-process
uses `compose_config`, which fills in what a Hydra run would (output folder, the chosen options).

Config folders outside the repository (an encoding or world kept in its own project) join through
Hydra's search path: ``python train.py hydra.searchpath=[file:///path/to/configs] ...`` for a run,
and the environment variable ``CLAY_EXP_CONFIG_DIRS`` (folders separated by ``os.pathsep``) for
everything composed from Python (`compose_config`, `config_options`: the catalog, the probe, the
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
#: Extra config folders (os.pathsep-separated) searched after configs/ by `compose_config` and
#: `config_options`.
CONFIG_DIRS_ENV = "CLAY_EXP_CONFIG_DIRS"


def config_dirs() -> tuple[Path, ...]:
    """Every config folder: configs/ first, then those named in ``$CLAY_EXP_CONFIG_DIRS``."""
    extra = [
        Path(p).expanduser().resolve() for p in os.environ.get(CONFIG_DIRS_ENV, "").split(os.pathsep) if p
    ]
    return (CONFIG_DIR, *extra)


def searchpath_override() -> list[str]:
    """The ``hydra.searchpath=[...]`` override that adds the extra config folders (none: empty)."""
    extra = config_dirs()[1:]
    return [f"hydra.searchpath=[{','.join(f'file://{d}' for d in extra)}]"] if extra else []


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
        cfg = compose("train.yaml", overrides=[*searchpath_override(), *overrides], return_hydra_config=True)
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
    Hydra's basic sweeper expands ``hydra.sweeper.params.<group>`` (a list ``a,b,c`` or a
    ``glob(*,exclude=[...])`` over the group's options); ValueError when it sweeps none."""
    cfg = compose_config(overrides, hydra_node=True)
    value = cfg.hydra.sweeper.params.get(group)
    if value is None:
        raise ValueError(f"{list(overrides)} sweeps no {group!r} (hydra.sweeper.params.{group} is unset)")
    (override,) = OverridesParser.create().parse_overrides([f"{group}={value}"])
    if isinstance(override.value(), Glob):
        return override.value().filter(config_options(group))
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(override.value())]
