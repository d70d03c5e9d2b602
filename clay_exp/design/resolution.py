"""How finely an encoding tells places apart before training: a prediction one can write down first.

`relative_change(encoding, lat, lon, distances_km)`: for each distance d, the mean change of the
encoding's output ``‖f(p) − f(q)‖`` between each place p of a set and a place q d km from it (a
random bearing), divided by the mean change between two random places of the set. Near 0: the
encoding gives the places d km apart (nearly) the same vector, so what differs between them must be
learned by amplifying tiny differences (a linear map from sin/cos of degrees must scale 15 km,
0.002 of its input's range, by hundreds); near 1 or above: they are as different as any two places of
the data. Tables give each tile its own random row, so they reach ~1 at their tile width; smooth
maps grow with d up to their wavelength (spherical harmonics of degree L ~ 20,000 km / L).

Computed on the encoding as initialised (the run's seed), without gradients: the prior the model
starts from, not what training makes of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: km per degree of latitude (mean earth radius 6371 km).
KM_PER_DEGREE = 2 * math.pi * 6371.0 / 360


def offset(lat: Tensor, lon: Tensor, km: float, bearing: Tensor) -> tuple[Tensor, Tensor]:
    """The places `km` from (lat, lon) (degrees) in direction `bearing` (radians from north), on the
    local tangent plane (fine while km is much less than the earth's radius)."""
    dlat = km * torch.cos(bearing) / KM_PER_DEGREE
    dlon = km * torch.sin(bearing) / (KM_PER_DEGREE * torch.cos(torch.deg2rad(lat)))
    return lat + dlat, ((lon + dlon + 180.0) % 360.0) - 180.0


@torch.no_grad()
def relative_change(
    encoding: nn.Module, lat: Tensor, lon: Tensor, distances_km: Sequence[float], seed: int = 0
) -> dict[float, float]:
    """``{d: mean ‖f(p) − f(p + d)‖ / mean ‖f(p) − f(p')‖}`` over the places (lat, lon) (float64
    degrees), p' a random other place of the set (module docstring); 0 for an encoding whose output
    never changes (``none``)."""
    if len(lat) < 2:
        raise ValueError("relative_change needs at least two places")
    generator = torch.Generator().manual_seed(seed)
    lat, lon = lat.double(), lon.double()

    def encode(a: Tensor, b: Tensor) -> Tensor:
        return encoding({"lat": a, "lon": b}).double().reshape(len(a), -1)

    here = encode(lat, lon)
    others = torch.randperm(len(lat), generator=generator)
    spread = (here - here[others]).norm(dim=1).mean()
    out = {}
    for km in distances_km:
        bearing = 2 * math.pi * torch.rand(len(lat), generator=generator, dtype=torch.float64)
        there = encode(*offset(lat, lon, float(km), bearing))
        change = (there - here).norm(dim=1).mean()
        out[float(km)] = float(change / spread) if spread > 0 else 0.0
    return out
