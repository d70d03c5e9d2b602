"""Composing the project's Hydra configs from Python (tests, benchmarks, notebooks).

`python train.py ...` composes through ``@hydra.main``; code that needs the same config in-process
uses `compose_config`, which fills in what a Hydra run would (output folder, the chosen options).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from clay_exp.resume import register_resolvers

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def config_options(group: str) -> list[str]:
    """The option names of a config group (e.g. every encoding), from its YAML files."""
    folder = CONFIG_DIR / group
    if not folder.is_dir():
        raise ValueError(
            f"no config group {group!r}; groups: {sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())}"
        )
    return sorted(p.stem for p in folder.glob("*.yaml"))


def compose_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> DictConfig:
    """Compose ``configs/train.yaml`` with `overrides`, as ``python train.py <overrides>`` would.

    `output_dir` replaces the run folder Hydra would create (and the logs root). The Hydra config is
    registered as the current one, so ``${hydra:...}`` interpolations resolve; like a task under
    ``@hydra.main``, the returned config has no ``hydra`` node.
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
    # A task under @hydra.main sees the config without its `hydra` node; so does the caller here.
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
