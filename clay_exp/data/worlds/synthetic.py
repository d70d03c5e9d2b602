"""`data=synthetic`: a procedurally generated world whose chips depend on where they are.

Generative process (fixed per ``world_seed``; chip ``i`` is always the same chip):

1. **Location**: the chip centre is uniform on the sphere by area, drawn by hashing
   ``(world_seed, stream, i)`` (no generator state, so batch size and workers do not matter).
2. **Cover fields**: ``num_covers`` smooth fields on the sphere, each a sum of three scales: global
   (wavenumber ``k`` ≈ 1 per radian), regional (≈ 10) and local (≈ 300, i.e. structure inside a
   chip), each scale a sum of random plane waves ``cos(k ω·q + φ)`` with weights ``scale_weights``.
   They are evaluated on a coarse grid over the chip's footprint (``chip_extent_deg`` wide) and turned
   into soft cover fractions by a softmax, then bilinearly upsampled to the chip.
3. **Pixels**: cover fractions times each cover's spectral signature (one value per band), plus a
   sinusoidal texture whose orientation, wavelength and amplitude come from a chip-level latent
   field at the centre (the phase is random per chip), plus i.i.d. Gaussian noise of ``noise_std``.

So the layout of the masked patches, the spectral mix and the texture are functions of location:
knowing *where* a chip is genuinely helps reconstructing what was masked, at several scales.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clay_exp.data.splits import LocationFilter
from clay_exp.data.worlds.world import GeneratedWorld, chip_noise
from clay_exp.geometry import footprint_grid, lonlat_to_unit
from clay_exp.hashing import hash_uniform

# Stream of per-chip randomness (distinct from the base class's location and noise streams).
_PHASE = 13


class SphericalWaveField:
    """Sum of random plane waves restricted to the unit sphere: ``Σ_s w_s √(2/J) Σ_j cos(k_s ω_sj·q + φ_sj)``.

    Each output feature has unit variance per scale before weighting; fixed by `generator`.
    """

    def __init__(
        self,
        features: int,
        wavenumbers: list[float],
        weights: list[float],
        waves: int,
        generator: torch.Generator,
    ) -> None:
        s = len(wavenumbers)
        omega = torch.randn(s, features, waves, 3, generator=generator, dtype=torch.float64)
        omega = omega / omega.norm(dim=-1, keepdim=True)
        k = torch.tensor(wavenumbers, dtype=torch.float64).view(s, 1, 1, 1)
        w = torch.tensor(weights, dtype=torch.float64).view(s, 1, 1) * math.sqrt(2.0 / waves)
        self.omega = (omega * k).float()  # (S, F, J, 3)
        self.phase = (
            2 * math.pi * torch.rand(s, features, waves, generator=generator, dtype=torch.float64)
        ).float()
        self.amp = w.float().expand(s, features, waves).contiguous()

    def __call__(self, q: Tensor) -> Tensor:
        """q: (..., 3) unit vectors -> (..., features)."""
        arg = torch.einsum("...d,sfjd->...sfj", q, self.omega) + self.phase
        return (torch.cos(arg) * self.amp).sum(dim=(-3, -1))


class SyntheticWorld(GeneratedWorld):
    """Map-style dataset of generated chips; index it with an int or a list of ints (a whole batch).

    Returns dicts with ``image`` (float32, C×H×W or B×C×H×W), ``lat``/``lon`` (float64 degrees) and
    ``index``. A DataLoader with auto-batching calls ``__getitems__`` with the batch's indices, so a
    batch is generated in one vectorised call. `locations` and `region`: see `GeneratedWorld`.
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        bands: int = 4,
        chip_size: int = 32,
        world_seed: int = 0,
        num_covers: int = 4,
        wavenumbers: tuple[float, float, float] = (1.0, 10.0, 300.0),
        scale_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        waves_per_scale: int = 8,
        chip_extent_deg: float = 0.5,
        cover_grid: int = 8,
        cover_temperature: float = 0.3,
        texture_strength: float = 0.5,
        noise_std: float = 0.1,
        locations: str = "sphere",
        region: LocationFilter | None = None,
    ) -> None:
        super().__init__(length, split, bands, chip_size, world_seed, locations, region)
        if len(wavenumbers) != len(scale_weights):
            raise ValueError(f"wavenumbers={wavenumbers} and scale_weights={scale_weights} differ in length")
        self.chip_extent_rad = math.radians(chip_extent_deg)
        self.cover_grid, self.cover_temperature = cover_grid, cover_temperature
        self.texture_strength, self.noise_std = texture_strength, noise_std

        g = torch.Generator().manual_seed(self.world_seed)
        self.cover_field = SphericalWaveField(
            num_covers, list(wavenumbers), list(scale_weights), waves_per_scale, g
        )
        # Chip-level latent (texture orientation, wavelength, amplitude, band weights): global + regional.
        self.chip_field = SphericalWaveField(
            4, list(wavenumbers[:2]), list(scale_weights[:2]), waves_per_scale, g
        )
        self.signatures = torch.rand(num_covers, bands, generator=g) * 2.0 - 1.0  # (K, C)
        self.texture_bands = torch.randn(bands, generator=g)  # (C,)
        pix = torch.arange(chip_size, dtype=torch.float32)
        self.pix_y, self.pix_x = torch.meshgrid(pix, pix, indexing="ij")

    # -- generation -----------------------------------------------------------------------------
    def footprint_points(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Unit vectors of the cover grid over each chip's footprint, (B, G, G, 3)."""
        return footprint_grid(lat, lon, self.chip_extent_rad, self.cover_grid)

    def generate(self, ids: Tensor) -> dict[str, Tensor]:
        """The chips with global ids `ids` (split offset included)."""
        s = self.chip_size
        lat, lon = self.locations(ids)
        # Cover fractions on the footprint grid, upsampled to pixels.
        covers = self.cover_field(self.footprint_points(lat, lon))  # (B, G, G, K)
        frac = torch.softmax(covers / self.cover_temperature, dim=-1).permute(0, 3, 1, 2)
        frac = F.interpolate(frac, size=(s, s), mode="bilinear", align_corners=False)  # (B, K, S, S)
        image = torch.einsum("bkhw,kc->bchw", frac, self.signatures)
        # Texture from the chip-level latent at the centre.
        z = self.chip_field(lonlat_to_unit(lat, lon).float())  # (B, 4)
        theta = math.pi * torch.special.ndtr(z[:, 0])
        wavelength = 3.0 + 9.0 * torch.special.ndtr(z[:, 1])
        amplitude = self.texture_strength * (0.5 + torch.special.ndtr(z[:, 2]))
        band_w = 1.0 + 0.5 * torch.tanh(z[:, 3:4] * self.texture_bands)  # (B, C)
        phase = 2 * math.pi * hash_uniform(self.world_seed, _PHASE, ids)
        along = self.pix_x * torch.cos(theta)[:, None, None] + self.pix_y * torch.sin(theta)[:, None, None]
        wave = torch.sin(2 * math.pi * along / wavelength[:, None, None] + phase[:, None, None])  # (B, S, S)
        image = image + amplitude[:, None, None, None] * band_w[:, :, None, None] * wave[:, None]
        image = image + self.noise_std * chip_noise(self.world_seed, ids, (self.bands, s, s))
        return {"image": image.float(), "lat": lat, "lon": lon, "index": ids}
