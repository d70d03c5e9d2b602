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

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.layers import mlp, siren

HEAD_CHOICES = ("linear", "mlp", "siren")


class SphericalHarmonicsEncoding(SpatialEncoding):
    """Real ``Y_l^m`` for ``0 <= l < degrees``, ordered by l then m = −l..l (column ``l² + l + m``)."""

    def __init__(
        self,
        degrees: int = 10,
        head: str = "siren",
        hidden_dim: int = 128,
        num_layers: int = 2,
        w0_initial: float = 30.0,
    ) -> None:
        super().__init__()
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

        # Column l² + l + m of the output takes P̄_l^|m| (packed at l(l+1)/2 + |m|) times the
        # trigonometric factor of m (at m + L − 1 in [√2 sin(|m|λ) for m < 0, 1, √2 cos(mλ) for m > 0]).
        degree_of = torch.cat([torch.full((2 * d + 1,), d) for d in range(L)])
        order_of = torch.cat([torch.arange(-d, d + 1) for d in range(L)])
        self.register_buffer(
            "legendre_index", degree_of * (degree_of + 1) // 2 + order_of.abs(), persistent=False
        )
        self.register_buffer("trig_index", order_of + L - 1, persistent=False)

        if head == "linear":
            self.head: nn.Module = nn.Identity()
            self.out_dim = self.num_features
        elif head == "mlp":
            self.head, self.out_dim = mlp(self.num_features, hidden_dim, num_layers), hidden_dim
        else:
            self.head = siren(self.num_features, hidden_dim, num_layers, w0_initial=w0_initial)
            self.out_dim = hidden_dim

    @torch.no_grad()
    def legendre(self, lat: Tensor) -> Tensor:
        """Fully normalised P̄_l^m(sin φ) (with the 1/√(4π)), float64, shape ``(L(L+1)/2, B)``.

        Row ``l(l+1)/2 + m`` holds (l, m): each degree is one contiguous block, filled in place from
        the two blocks before it. Coordinates are data, not parameters: no gradient flows to them.
        """
        phi = torch.deg2rad(lat.double())
        x, y = phi.sin(), phi.cos().clamp(min=0.0)  # cos θ, sin θ (θ: the colatitude)
        diag = self.diag_coef[:, None] * y.pow(self.orders[:, None])  # P̄_m^m for every m, (L, B)
        packed = diag.new_empty(self.degrees * (self.degrees + 1) // 2, lat.shape[0])
        packed[0] = diag[0]
        for l in range(1, self.degrees):  # noqa: E741
            start, prev, prev2 = l * (l + 1) // 2, (l - 1) * l // 2, (l - 2) * (l - 1) // 2
            block = packed[start : start + l]  # m = 0 .. l−1
            torch.mul(packed[prev : prev + l], x, out=block)
            if l >= 2:  # b_lm = 0 at m = l−1, so only m <= l−2 reads degree l−2
                block[: l - 1].addcmul_(packed[prev2 : prev2 + l - 1], self.rec_b[l, : l - 1, None], value=-1)
            block.mul_(self.rec_a[l, :l, None])
            packed[start + l] = diag[l]
        return packed

    @torch.no_grad()
    def harmonics(self, lat: Tensor, lon: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        """Real Y_l^m, ``(B, L²)`` in `dtype` (column ``l² + l + m``; a transposed view)."""
        lam = self.orders[1:, None] * torch.deg2rad(lon.double())  # m λ for m = 1..L−1, (L−1, B)
        ones = lam.new_ones(1, lam.shape[1])
        trig = torch.cat([math.sqrt(2) * lam.sin().flip(0), ones, math.sqrt(2) * lam.cos()], dim=0)
        legendre = self.legendre(lat).to(dtype)
        # index_select copies whole rows (B contiguous values); advanced indexing is ~15x slower here
        rows = legendre.index_select(0, self.legendre_index) * trig.to(dtype).index_select(0, self.trig_index)
        return rows.T

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.head(self.harmonics(lat, lon, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, head={self.head_kind}, out_dim={self.out_dim}"
