"""Geometry on the unit sphere shared by the worlds and the encodings."""

from __future__ import annotations

import torch
from torch import Tensor


def lonlat_to_unit(lat: Tensor, lon: Tensor) -> Tensor:
    """Unit vectors on the sphere (x toward (0°, 0°), z toward the north pole), shape (..., 3)."""
    phi, lam = torch.deg2rad(lat), torch.deg2rad(lon)
    return torch.stack(
        [torch.cos(phi) * torch.cos(lam), torch.cos(phi) * torch.sin(lam), torch.sin(phi)], dim=-1
    )


def footprint_grid(lat: Tensor, lon: Tensor, extent_rad: float, grid: int) -> Tensor:
    """Unit vectors of a grid×grid raster over each chip's footprint, (B, G, G, 3).

    The footprint is a square `extent_rad` wide in the local east/north tangent plane of the chip
    centre; row 0 is the northern edge, column 0 the western edge (cell centres, like pixels).
    """
    lin = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid - 0.5
    grid_dy, grid_dx = torch.meshgrid(-lin, lin, indexing="ij")  # north up, east right
    p = lonlat_to_unit(lat, lon).float()
    phi, lam = torch.deg2rad(lat).float(), torch.deg2rad(lon).float()
    east = torch.stack([-torch.sin(lam), torch.cos(lam), torch.zeros_like(lam)], dim=-1)
    north = torch.stack(
        [-torch.sin(phi) * torch.cos(lam), -torch.sin(phi) * torch.sin(lam), torch.cos(phi)], -1
    )
    q = (
        p[:, None, None, :]
        + extent_rad * grid_dx[None, :, :, None] * east[:, None, None, :]
        + extent_rad * grid_dy[None, :, :, None] * north[:, None, None, :]
    )
    return q / q.norm(dim=-1, keepdim=True)


def unit_to_lonlat(q: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of `lonlat_to_unit`: (lat, lon) in float64 degrees of unit vectors (..., 3)."""
    q = q.to(torch.float64)
    lat = torch.rad2deg(torch.asin(q[..., 2].clamp(-1.0, 1.0)))
    return lat, torch.rad2deg(torch.atan2(q[..., 1], q[..., 0]))
