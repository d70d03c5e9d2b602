"""`rff`: random Fourier features (Tancik et al., 2020) of equal-earth coordinates, GeoCLIP's recipe.

``γ(v) = [cos 2πBv, sin 2πBv]`` with ``B ~ N(0, σ²)`` of shape ``(num_frequencies, 2)``, on ``v``
the point's equal-earth projection scaled as GeoCLIP does (Vivanco Cepeda et al., 2023): x in about
[−1, 1], y in about [−0.49, 0.49]. Then an MLP. With ``multiscale`` there is one branch (its own B and
MLP) per σ in ``sigmas`` (GeoCLIP: 2^0, 2^4, 2^8) and the branches are summed.

B is a fixed buffer drawn from its own generator seeded with ``seed`` (the YAML passes the run seed),
so it depends on the run seed only, not on what else was built before it.

Not periodic: the equal-earth map cuts the globe at the antimeridian (x = ±1 for λ = ±180°), as in
GeoCLIP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.encodings.layers import feature_head

# Equal Earth (Šavrič, Patterson & Jenny, 2018) polynomial coefficients, and GeoCLIP's scale.
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
GEOCLIP_SCALE = 66.50336 / 180.0


def equal_earth(lat: Tensor, lon: Tensor) -> Tensor:
    """Equal-earth projection on the unit sphere, ``(B, 2)`` = (x, y), float64; x = ±2.7066 at λ = ±180°."""
    phi, lam = torch.deg2rad(lat.double()), torch.deg2rad(lon.double())
    theta = torch.asin(math.sqrt(3) / 2 * phi.sin())
    t2 = theta * theta
    x = 2 * math.sqrt(3) * lam * theta.cos() / (3 * (9 * A4 * t2**4 + 7 * A3 * t2**3 + 3 * A2 * t2 + A1))
    y = theta * (A4 * t2**4 + A3 * t2**3 + A2 * t2 + A1)
    return torch.stack([x, y], dim=-1)


class FourierBranch(nn.Module):
    """``[cos 2πBv, sin 2πBv]`` for one σ, then the branch's head."""

    def __init__(self, frequencies: Tensor, hidden_dim: int, num_layers: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", frequencies)  # (num_frequencies, 2), part of the state
        self.head, self.out_dim = feature_head(2 * frequencies.shape[0], hidden_dim, num_layers)

    def features(self, v: Tensor) -> Tensor:
        angles = 2 * math.pi * v @ self.frequencies.T.double()
        return torch.cat([angles.cos(), angles.sin()], dim=-1).float()

    def forward(self, v: Tensor) -> Tensor:
        return self.head(self.features(v))


class RandomFourierFeaturesEncoding(SpatialEncoding):
    #: σ sets the frequencies' scale (GeoCLIP's three: 2^0, 2^4, 2^8). ``multiscale`` reads `sigmas`
    #: instead: a study tuning rff_multiscale restricts its space to lr_scale.
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(0.1, 10.0), "sigma": Knob(1.0, 256.0)}

    def __init__(
        self,
        sigma: float = 16.0,
        multiscale: bool = False,
        sigmas: Sequence[float] = (1.0, 16.0, 256.0),
        num_frequencies: int = 256,
        hidden_dim: int = 128,
        num_layers: int = 2,
        seed: int = 0,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__(lr_scale)
        scales = [float(s) for s in (sigmas if multiscale else [sigma])]
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            name = "sigmas" if multiscale else "sigma"
            raise ValueError(f"{name}={sigmas if multiscale else sigma!r} must be positive and finite")
        if int(num_frequencies) < 1:
            raise ValueError(f"num_frequencies={num_frequencies!r} must be >= 1")
        if multiscale and num_layers < 1:
            raise ValueError(
                f"num_layers={num_layers!r}: multiscale sums the branches' MLP outputs, "
                "so each branch needs num_layers >= 1"
            )
        generator = torch.Generator().manual_seed(int(seed))
        self.sigmas, self.multiscale, self.seed = scales, bool(multiscale), int(seed)
        self.branches = nn.ModuleList(
            FourierBranch(
                s * torch.randn(int(num_frequencies), 2, generator=generator, dtype=torch.float64),
                hidden_dim,
                num_layers,
            )
            for s in scales
        )
        self.out_dim = self.branches[0].out_dim

    @staticmethod
    def coordinates(lat: Tensor, lon: Tensor) -> Tensor:
        """GeoCLIP's input: the equal-earth projection times 66.50336/180."""
        return equal_earth(lat, lon) * GEOCLIP_SCALE

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        v = self.coordinates(lat, lon)
        return torch.stack([branch(v) for branch in self.branches], dim=0).sum(dim=0)

    def extra_repr(self) -> str:
        return f"sigmas={self.sigmas}, seed={self.seed}, out_dim={self.out_dim}"
