"""Geometry on the unit sphere shared by the synthetic world and the encodings."""

from __future__ import annotations

import torch
from torch import Tensor


def lonlat_to_unit(lat: Tensor, lon: Tensor) -> Tensor:
    """Unit vectors on the sphere (x toward (0°, 0°), z toward the north pole), shape (..., 3)."""
    phi, lam = torch.deg2rad(lat), torch.deg2rad(lon)
    return torch.stack(
        [torch.cos(phi) * torch.cos(lam), torch.cos(phi) * torch.sin(lam), torch.sin(phi)], dim=-1
    )
