"""Config folders outside the repository, for every Hydra entry point of clay-exp.

``CLAY_EXP_CONFIG_DIRS=/a/configs:/b/configs`` (``os.pathsep``-separated) appends those folders to
Hydra's config search path wherever Hydra starts: ``python train.py`` (runs and ``-m`` sweeps, whose
``glob(...)`` over a group's options then sees them: Hydra's glob ignores ``hydra.searchpath``) and
the compose API (`clay_exp.config.compose_config`: catalog, probe, benchmarks, tests). Each folder
mirrors ``configs/``: ``<dir>/encoding/<name>.yaml`` is one more encoding.

Hydra finds this module because ``hydra_plugins`` is a namespace package it scans for plugins; it
stays light (no clay_exp import), as Hydra imports every plugin module at start.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: The environment variable (also read by clay_exp.config.config_dirs).
CONFIG_DIRS_ENV = "CLAY_EXP_CONFIG_DIRS"


def extra_config_dirs() -> list[Path]:
    """The folders named in ``$CLAY_EXP_CONFIG_DIRS``, absolute, in order."""
    value = os.environ.get(CONFIG_DIRS_ENV, "")
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p]


class ClayExpConfigDirs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for folder in extra_config_dirs():
            search_path.append(provider="clay-exp", path=f"file://{folder}")
