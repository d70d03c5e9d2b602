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
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from clay_exp.geometry import lonlat_to_unit
from clay_exp.hashing import hash_ints, hash_uniform

SPLIT_OFFSETS = {"train": 0, "val": 2**40, "test": 2**41}
# Streams of per-chip randomness (any distinct constants).
_LAT, _LON, _PHASE, _NOISE = 11, 12, 13, 14


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


class SyntheticWorld(Dataset):
    """Map-style dataset of generated chips; index it with an int or a list of ints (a whole batch).

    Returns dicts with ``image`` (float32, C×H×W or B×C×H×W), ``lat``/``lon`` (float64 degrees) and
    ``index``. A DataLoader with auto-batching calls ``__getitems__`` with the batch's indices, so a
    batch is generated in one vectorised call (pair it with a pass-through ``collate_fn``).
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
    ) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"split={split!r} is not one of {list(SPLIT_OFFSETS)}")
        if length < 1:
            raise ValueError(f"length={length!r} must be >= 1")
        if len(wavenumbers) != len(scale_weights):
            raise ValueError(f"wavenumbers={wavenumbers} and scale_weights={scale_weights} differ in length")
        self.length, self.split, self.offset = int(length), split, SPLIT_OFFSETS[split]
        self.bands, self.chip_size, self.world_seed = bands, chip_size, int(world_seed)
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
        lin = (torch.arange(cover_grid, dtype=torch.float32) + 0.5) / cover_grid - 0.5
        self.grid_dy, self.grid_dx = torch.meshgrid(-lin, lin, indexing="ij")  # north up, east right
        pix = torch.arange(chip_size, dtype=torch.float32)
        self.pix_y, self.pix_x = torch.meshgrid(pix, pix, indexing="ij")

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """A whole batch in one call (what DataLoader's auto-batching asks for)."""
        return self[indices]

    def __getitem__(self, index: int | list[int] | Tensor) -> dict[str, Any]:
        single = isinstance(index, int)
        idx = torch.as_tensor([index] if single else index, dtype=torch.int64)
        if bool(((idx < 0) | (idx >= self.length)).any()):
            raise IndexError(f"chip index out of range [0, {self.length}): {idx.tolist()}")
        batch = self.generate(idx + self.offset)
        return {k: v[0] for k, v in batch.items()} if single else batch

    # -- generation -----------------------------------------------------------------------------
    def locations(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Chip centres (lat, lon in float64 degrees), uniform by area."""
        u = hash_uniform(self.world_seed, _LAT, ids, dtype=torch.float64)
        v = hash_uniform(self.world_seed, _LON, ids, dtype=torch.float64)
        lat = torch.rad2deg(torch.asin(2.0 * u - 1.0))
        lon = 360.0 * v - 180.0
        return lat, lon

    def footprint_points(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Unit vectors of a G×G grid over each chip's footprint (local east/north plane), (B, G, G, 3)."""
        p = lonlat_to_unit(lat, lon).float()
        phi, lam = torch.deg2rad(lat).float(), torch.deg2rad(lon).float()
        east = torch.stack([-torch.sin(lam), torch.cos(lam), torch.zeros_like(lam)], dim=-1)
        north = torch.stack(
            [-torch.sin(phi) * torch.cos(lam), -torch.sin(phi) * torch.sin(lam), torch.cos(phi)], -1
        )
        e = self.chip_extent_rad
        q = (
            p[:, None, None, :]
            + e * self.grid_dx[None, :, :, None] * east[:, None, None, :]
            + e * self.grid_dy[None, :, :, None] * north[:, None, None, :]
        )
        return q / q.norm(dim=-1, keepdim=True)

    def pixel_noise(self, ids: Tensor) -> Tensor:
        """Standard normal noise (B, C, H, W), seeded per chip from hash(world_seed, id).

        A generator per chip costs one seed call per chip and is ~5x faster than hashing every pixel.
        """
        keys = hash_ints(self.world_seed, _NOISE, ids).tolist()
        g = torch.Generator()
        shape = (self.bands, self.chip_size, self.chip_size)
        return torch.stack([torch.randn(shape, generator=g.manual_seed(k)) for k in keys])

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
        image = image + self.noise_std * self.pixel_noise(ids)
        return {"image": image.float(), "lat": lat, "lon": lon, "index": ids}
