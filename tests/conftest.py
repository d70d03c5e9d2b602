"""Shared fixtures: composed configs in a temp folder, coordinate sets that probe the edges."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from clay_exp.config import compose_config

# wandb must never reach the network from a test, even if a test selects the wandb logger.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the train config with overrides; the run writes into tmp_path (CSV logger only)."""

    def _make(overrides: Sequence[str] = (), output_dir: Path | None = None) -> DictConfig:
        return compose_config(["logger=csv", *overrides], output_dir or tmp_path)

    return _make


@pytest.fixture
def edge_coordinates() -> tuple[torch.Tensor, torch.Tensor]:
    """Poles, the antimeridian (both signs), the mercator limit, the equator/prime meridian, random points."""
    g = torch.Generator().manual_seed(0)
    lat = torch.tensor(
        [90.0, -90.0, 0.0, 0.0, 45.0, -45.0, 85.0511, -85.0511, 89.999, 0.0], dtype=torch.float64
    )
    lon = torch.tensor(
        [0.0, 0.0, 180.0, -180.0, 180.0, -180.0, 179.999, -179.999, 10.0, 0.0], dtype=torch.float64
    )
    rlat = torch.rad2deg(torch.asin(2 * torch.rand(54, generator=g, dtype=torch.float64) - 1))
    rlon = 360 * torch.rand(54, generator=g, dtype=torch.float64) - 180
    return torch.cat([lat, rlat]), torch.cat([lon, rlon])
