"""`spherical_harmonics`: real spherical harmonics ``Y_l^m`` for ``l < L`` (L² features), then a head.

The location encoder of Rußwurm et al. (2024), "Geographic location encoding with spherical harmonics
and sinusoidal representation networks" (SatCLIP uses it): the harmonics are an orthonormal basis of
functions on the sphere, so they are smooth at the poles and periodic in λ by construction.

Computed in float64 by the standard stable recurrence for fully normalised associated Legendre
functions P̄_l^m(sin φ), one Python step per degree l, vectorised over the batch and every order m:

* ``P̄_0^0 = 1/√(4π)``, ``P̄_m^m = √((2m+1)/(2m)) cos φ · P̄_{m−1}^{m−1}`` (all m at once, a cumulative product),
* ``P̄_l^m = a_lm (sin φ · P̄_{l−1}^m − b_lm P̄_{l−2}^m)``, ``a_lm = √((4l²−1)/(l²−m²))``,
  ``b_lm = √(((l−1)²−m²)/(4(l−1)²−1))`` (for m = l−1 this is ``√(2l+1) sin φ P̄_{l−1}^{l−1}``),

then ``Y_l^0 = P̄_l^0``, ``Y_l^m = √2 P̄_l^m cos(mλ)``, ``Y_l^{−m} = √2 P̄_l^m sin(mλ)`` (m > 0). This is
the usual real basis, ``√2 (−1)^m Re/Im`` of scipy's complex ``Y_l^m``: the (−1)^m cancels the
Condon–Shortley phase, which P̄ here leaves out. Unlike the closed forms some implementations generate
(L² Python calls, non-finite from L ≈ 30 on), this stays finite and orthonormal at L = 100.

Heads: ``linear`` (the harmonics themselves: the model's own linear map to its width is the linear
head), ``mlp`` (`layers.mlp`) or ``siren`` (`layers.siren`, sin activations, w0 = 30 on the first
layer, as the published SH+SIREN encoder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.encodings.layers import mlp, siren

HEAD_CHOICES = ("linear", "mlp", "siren")


class SphericalHarmonicsEncoding(SpatialEncoding):
    """Real ``Y_l^m`` for ``0 <= l < degrees``, ordered by l then m = −l..l (column ``l² + l + m``)."""

    #: Rußwurm et al. (2024) tune L, the SIREN and the rate per dataset: L sets the finest scale
    #: (~20000 km / L), w0 the first layer's frequency; they interact with the rate.
    search_space: ClassVar[Mapping[str, Knob]] = {
        "lr_scale": Knob(0.1, 10.0),
        "degrees": Knob(5, 30, "linear", integer=True),
        "w0_initial": Knob(3.0, 60.0),
    }

    def __init__(
        self,
        degrees: int = 10,
        head: str = "siren",
        hidden_dim: int = 128,
        num_layers: int = 2,
        w0_initial: float = 30.0,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__(lr_scale)
        if int(degrees) != degrees or degrees < 1:
            raise ValueError(f"degrees={degrees!r} must be an integer >= 1 (L: harmonics of degree l < L)")
        if head not in HEAD_CHOICES:
            raise ValueError(f"head={head!r} is not one of {list(HEAD_CHOICES)}")
        L = self.degrees = int(degrees)
        self.head_kind = head
        self.num_features = L * L

        l = torch.arange(L, dtype=torch.float64)[:, None]  # noqa: E741 - the degree, as in the formulas
        m = torch.arange(L, dtype=torch.float64)[None, :]
        below = m < l  # the entries the three-term recurrence fills (m <= l − 1)
        a = torch.where(below, ((4 * l**2 - 1) / (l**2 - m**2).clamp(min=1)).sqrt(), 0.0)
        b = torch.where(m < l - 1, (((l - 1) ** 2 - m**2) / (4 * (l - 1) ** 2 - 1).clamp(min=1)).sqrt(), 0.0)
        k = torch.arange(1, L, dtype=torch.float64)
        diag = torch.cat([torch.ones(1, dtype=torch.float64), ((2 * k + 1) / (2 * k)).sqrt().cumprod(0)])
        self.register_buffer("rec_a", a, persistent=False)
        self.register_buffer("rec_b", b, persistent=False)
        self.register_buffer("diag_coef", diag / math.sqrt(4 * math.pi), persistent=False)
        self.register_buffer("orders", torch.arange(L, dtype=torch.float64), persistent=False)
        self.register_buffer("descending", torch.arange(L - 2, -1, -1), persistent=False)  # reverses rows

        if head == "linear":
            self.head: nn.Module = nn.Identity()
            self.out_dim = self.num_features
        elif head == "mlp":
            self.head, self.out_dim = mlp(self.num_features, hidden_dim, num_layers), hidden_dim
        else:
            self.head = siren(self.num_features, hidden_dim, num_layers, w0_initial=w0_initial)
            self.out_dim = hidden_dim

    @torch.no_grad()
    def harmonics(self, lat: Tensor, lon: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        """Real Y_l^m, ``(B, L²)`` in `dtype` (column ``l² + l + m``; a transposed view).

        Degree by degree: the Legendre block of degree l (rows m = 0..l, float64) comes from the two
        before it, kept in a ring of three preallocated buffers, and goes straight into its L² rows of
        the output, times the trigonometric factors. Coordinates are data, not parameters: no
        gradient flows to them.
        """
        L, n = self.degrees, lat.shape[0]
        phi = torch.deg2rad(lat.double())
        x, y = phi.sin(), phi.cos().clamp(min=0.0)  # cos θ, sin θ (θ: the colatitude)
        diag = self.diag_coef[:, None] * y.pow(self.orders[:, None])  # P̄_m^m for every m, (L, B)
        lam = self.orders[1:, None] * torch.deg2rad(lon.double())  # m λ for m = 1..L−1
        cos_m = torch.cat([lam.new_ones(1, n), math.sqrt(2) * lam.cos()])  # m = 0..L−1
        sin_m = math.sqrt(2) * lam.sin()  # m = 1..L−1

        out = torch.empty(L * L, n, dtype=dtype, device=lat.device)
        ring = diag.new_empty(3, L, n)  # Legendre blocks of degrees l, l−1, l−2
        scratch = out.new_empty(max(L - 1, 1), n)
        for l in range(L):  # noqa: E741
            block, prev, prev2 = (
                ring[l % 3, : l + 1],
                ring[(l - 1) % 3, :l],
                ring[(l - 2) % 3, : max(l - 1, 0)],
            )
            if l >= 1:  # P̄_l^m = a_lm (x P̄_{l−1}^m − b_lm P̄_{l−2}^m), m < l (b = 0 at m = l−1)
                torch.mul(prev, x, out=block[:l])
                if l >= 2:
                    block[: l - 1].addcmul_(prev2, self.rec_b[l, : l - 1, None], value=-1)
                block[:l].mul_(self.rec_a[l, :l, None])
            block[l] = diag[l]
            first = l * l  # columns l² .. l² + 2l hold m = −l .. l
            torch.mul(block, cos_m[: l + 1], out=out[first + l : first + 2 * l + 1])  # m = 0..l
            if l >= 1:  # m = −l..−1: P̄_l^|m| sin(|m|λ), |m| descending
                torch.mul(block[1:], sin_m[:l], out=scratch[:l])
                torch.index_select(scratch[:l], 0, self.descending[L - 1 - l :], out=out[first : first + l])
        return out.T

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.head(self.harmonics(lat, lon, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, head={self.head_kind}, out_dim={self.out_dim}"
