"""`data=hierarchical_world`: a synthetic world with ground truth, built on the web-mercator tile chain.

Generative process (fixed per ``world_seed``; chip ``i`` is always the same chip):

1. **Location**: uniform by area on the sphere, or over land (``locations=land``), see `GeneratedWorld`.
2. **Latent factors per level**: for each level zoom ``z`` in ``levels`` (default z0 global, z3
   continental, z6 regional, z10 local) the chip's tile at ``z`` carries ``FACTORS_PER_LEVEL``
   factors ``f``, hashed from ``(world_seed, z, x, y)``: a Gaussian vector scaled to norm √d. Every
   chip in a tile shares them; z0 is one tile, so its factors are global (the same for every chip,
   learnable without location).
3. **Pixels**: ``image = Σ_l √v_l · Σ_k f_lk B_lk + √v_noise · ε``. The basis images ``B_lk`` (C×H×W)
   are smooth random patterns (sums of random plane waves across the chip, per band), made
   orthogonal across all levels and factors and scaled to mean square 1/d; ε is i.i.d. N(0, 1).

Because the bases are orthogonal and ``|f_l|² = d``, level ``l`` contributes exactly ``v_l`` to every
chip's mean square (over pixels and bands) and nothing to the other levels' components, so
``level_shares`` (with ``noise_share``; they sum to 1) *are* the shares of the pixel variance, in
every chip of every world. Location tells a model the factors of the chip's tiles, i.e. everything
but the noise; the batch carries them as ``latents`` (B, d·L), which only ``encoding=oracle`` reads:
the floor any location encoding could reach. It also carries ``latents_seen`` (B, L): whether the
chip's tile at each level holds a training chip (`observe_training`; all true until the datamodule
tells the world its training locations). Only those factors can be learned from training data, so
``encoding=oracle_seen`` (the oracle restricted to them) is the *learnable* yardstick.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from clay_exp.data.splits import LocationFilter
from clay_exp.data.worlds.world import GeneratedWorld, chip_noise
from clay_exp.hashing import hash_uniform
from clay_exp.tiles import check_zoom, tile_chain

#: Latent factors per level (d): the width of each level's block of the batch's ``latents``.
FACTORS_PER_LEVEL = 8
# Streams of per-tile randomness and noise (distinct from the base class's streams).
_TILE, _NOISE = 21, 23


def smooth_orthogonal_basis(
    count: int, bands: int, size: int, max_cycles: float, generator: torch.Generator, waves: int = 6
) -> Tensor:
    """`count` smooth random images (count, bands, size, size), orthonormal as vectors (unit norm).

    Each image starts as a sum of `waves` random plane waves (at most `max_cycles` cycles per chip,
    random phase, random weight per band); a QR decomposition then makes them orthonormal.
    """
    if count > bands * size * size:
        raise ValueError(
            f"{count} latent factors need at least as many pixel values, got {bands}x{size}x{size}; "
            "use fewer levels or larger chips"
        )
    opts = {"generator": generator, "dtype": torch.float64}
    coords = torch.arange(size, dtype=torch.float64) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angle = 2 * math.pi * torch.rand(count, waves, 1, 1, **opts)
    cycles = 1.0 + (max_cycles - 1.0) * torch.rand(count, waves, 1, 1, **opts)
    phase = 2 * math.pi * torch.rand(count, waves, 1, 1, **opts)
    arg = 2 * math.pi * cycles * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase
    patterns = torch.cos(arg)  # (count, waves, size, size)
    band_weights = torch.randn(count, waves, bands, **opts)
    images = torch.einsum("nwhx,nwc->nchx", patterns, band_weights).reshape(count, -1)
    q, _ = torch.linalg.qr(images.T)  # (N, count), orthonormal columns
    return q.T.reshape(count, bands, size, size)


class HierarchicalWorld(GeneratedWorld):
    """Chips whose content comes from latent factors of their tiles at several zooms (module docstring).

    Args:
        levels: increasing zoom levels that carry factors.
        level_shares: each level's share of the pixel variance (one per level).
        noise_share: the share of i.i.d. pixel noise; ``sum(level_shares) + noise_share`` must be 1.
        max_cycles: the basis patterns' highest spatial frequency, in cycles per chip.
        Others: see `GeneratedWorld`.
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        bands: int = 4,
        chip_size: int = 32,
        world_seed: int = 0,
        levels: Sequence[int] = (0, 3, 6, 10),
        level_shares: Sequence[float] = (0.25, 0.25, 0.25, 0.15),
        noise_share: float = 0.1,
        max_cycles: float = 4.0,
        locations: str = "sphere",
        region: LocationFilter | None = None,
        sites: int = 256,
        site_zoom: int = 6,
    ) -> None:
        super().__init__(length, split, bands, chip_size, world_seed, locations, region, sites, site_zoom)
        self.levels = [check_zoom(z) for z in levels]
        if not self.levels or any(b <= a for a, b in itertools.pairwise(self.levels)):
            raise ValueError(f"data.world.levels={list(levels)} must be a non-empty increasing list of zooms")
        shares = [float(v) for v in level_shares]
        if len(shares) != len(self.levels):
            raise ValueError(
                f"data.world.level_shares={shares} needs one share per level of levels={self.levels}"
            )
        if min([*shares, noise_share]) < 0 or abs(sum(shares) + noise_share - 1.0) > 1e-6:
            raise ValueError(
                f"data.world.level_shares={shares} and noise_share={noise_share} must be >= 0 and sum to 1 "
                f"(they are shares of the pixel variance; the sum is {sum(shares) + noise_share:.6g})"
            )
        if max_cycles < 1:
            raise ValueError(f"data.world.max_cycles={max_cycles!r} must be >= 1")
        self.level_shares, self.noise_share = shares, float(noise_share)
        d, num_levels = FACTORS_PER_LEVEL, len(self.levels)
        g = torch.Generator().manual_seed(self.world_seed)
        unit = smooth_orthogonal_basis(d * num_levels, self.bands, self.chip_size, max_cycles, g)
        pixels = self.bands * self.chip_size**2
        #: (L, d, C, S, S): orthogonal, each with mean square 1/d over its C·S·S values.
        self.basis = (unit * math.sqrt(pixels / d)).float().view(num_levels, d, *unit.shape[1:])
        #: Per level, the sorted keys of the tiles that hold training chips (None: not told).
        self.seen_tiles: list[Tensor] | None = None

    def tile_xy(self, lat: Tensor, lon: Tensor) -> tuple[Tensor, Tensor]:
        """Column x and row y of each point's tile at every level, each (B, L) int64."""
        chain = tile_chain(lon, lat, self.levels)
        return (
            torch.stack([chain[z][0] for z in self.levels], dim=1),
            torch.stack([chain[z][1] for z in self.levels], dim=1),
        )

    def _keys(self, x: Tensor, y: Tensor) -> Tensor:
        """One int64 key per tile, (B, L): ``x · 2^z + y`` at each level's zoom z."""
        return x * (2 ** torch.tensor(self.levels)) + y

    def observe_training(self, lat: Tensor, lon: Tensor) -> None:
        """Remember which tiles the training chips (at `lat`, `lon`) occupy, level by level."""
        keys = self._keys(*self.tile_xy(lat, lon))
        self.seen_tiles = [torch.unique(keys[:, i]) for i in range(len(self.levels))]

    def seen(self, lat: Tensor, lon: Tensor) -> Tensor:
        """(B, L) bool: whether each point's tile at each level holds a training chip."""
        return self._seen(*self.tile_xy(lat, lon))

    def _seen(self, x: Tensor, y: Tensor) -> Tensor:
        if self.seen_tiles is None:
            return torch.ones(x.shape, dtype=torch.bool)
        keys = self._keys(x, y)
        return torch.stack([torch.isin(keys[:, i], t) for i, t in enumerate(self.seen_tiles)], dim=1)

    @property
    def latent_dim(self) -> int:
        return FACTORS_PER_LEVEL * len(self.levels)

    def tile_factors(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Factors of each point's tile at every level, (B, L, d), each level's vector of norm √d."""
        return self._factors(*self.tile_xy(lat, lon))

    def _factors(self, x: Tensor, y: Tensor) -> Tensor:
        zoom = torch.tensor(self.levels)[:, None]
        u = hash_uniform(  # (B, L, d)
            self.world_seed, _TILE, zoom, x[..., None], y[..., None], torch.arange(FACTORS_PER_LEVEL)
        )
        gauss = torch.special.ndtri(u)
        return math.sqrt(FACTORS_PER_LEVEL) * gauss / gauss.norm(dim=-1, keepdim=True)

    def generate(self, ids: Tensor) -> dict[str, Tensor]:
        s = self.chip_size
        lat, lon = self.locations(ids)
        x, y = self.tile_xy(lat, lon)  # the tile chain once, for the factors and what training saw
        factors = self._factors(x, y)  # (B, L, d)
        amplitude = torch.tensor([math.sqrt(v) for v in self.level_shares])[None, :, None]
        image = torch.einsum("blk,lkchw->bchw", factors * amplitude, self.basis)
        if self.noise_share > 0:
            noise = chip_noise(self.world_seed, ids, (self.bands, s, s), stream=_NOISE)
            image = image + math.sqrt(self.noise_share) * noise
        return {
            "image": image.float(),
            "lat": lat,
            "lon": lon,
            "index": ids,
            "latents": factors.flatten(1),
            "latents_seen": self._seen(x, y),
        }
