"""What every generated world shares: indexing, splits, where chips are, per-chip noise.

A world is a map-style dataset indexed by an int or a list of ints (a whole batch, generated in one
vectorised call). Chip ``i`` of a world seed is always the same chip: every random number is a hash
of ``(world_seed, stream, chip id)`` (clay_exp.hashing), never generator state, so batch size, order
and workers do not matter.

Locations are uniform by area on the sphere, optionally restricted to land (the 1 km land mask), or
clustered at ``sites`` (as real EO datasets are: many chips around few places), and optionally
restricted to a region (a location filter from clay_exp.data.splits). A restricted chip takes the first of its
candidate locations that passes: candidate ``k`` of chip ``id`` hashes ``id + k * 2**44``, so
candidate 0 is the unrestricted location and the choice stays a pure function of the chip id.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from clay_exp.data.splits import LocationFilter
from clay_exp.hashing import hash_ints, hash_uniform
from clay_exp.tiles import check_zoom, lonlat_to_tile

#: Chip ids of each split start here (`GeneratedWorld.offset`): disjoint ranges of 2**40 ids.
SPLIT_OFFSETS = {"train": 0, "val": 2**40, "test": 2**41, "tune": 3 * 2**40}
LOCATION_CHOICES = ("sphere", "land", "sites")
# Streams of per-chip randomness (any distinct constants; subclasses use others).
_LAT, _LON, _NOISE = 11, 12, 14
_SITE, _SITE_LAT, _SITE_LON = 15, 16, 17
_CANDIDATE_STRIDE = 2**44
_CANDIDATES_PER_ROUND = 16
_MAX_CANDIDATES = 4096


def chip_noise(world_seed: int, ids: Tensor, shape: tuple[int, ...], stream: int = _NOISE) -> Tensor:
    """Standard normal noise of `shape` per chip, (B, *shape), seeded from hash(world_seed, stream, id).

    A generator per chip costs one seed call per chip and is ~5x faster than hashing every pixel.
    """
    g = torch.Generator()
    keys = hash_ints(world_seed, stream, ids).tolist()
    return torch.stack([torch.randn(shape, generator=g.manual_seed(k)) for k in keys])


class GeneratedWorld(Dataset):
    """Base class of the generated worlds: subclasses implement `generate(ids)` -> batch dict.

    Args:
        length: chips in this split.
        split: ``train``, ``val``, ``test`` or ``tune`` (disjoint chip ids of the same planet).
        bands, chip_size: chip shape (C, H = W).
        world_seed: fixes the world (content and locations).
        locations: ``sphere`` (uniform by area), ``land`` (uniform by area over land) or ``sites``:
            ``sites`` places, uniform by area, each the web-mercator tile at ``site_zoom`` holding
            one; each chip lies at a hashed site (all splits share the sites), uniform in that
            tile's mercator square. Every tile at ``site_zoom`` and coarser that holds a site then
            holds ~``length / sites`` chips of each split, and validation chips lie in tiles
            training has seen — the setting of a dataset collected around sites.
        region: keep only chip centres where ``region(lat, lon)`` is True (held-out tiles).
        sites, site_zoom: the number of sites and the zoom of their tiles (``locations=sites``).
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        bands: int = 4,
        chip_size: int = 32,
        world_seed: int = 0,
        locations: str = "sphere",
        region: LocationFilter | None = None,
        sites: int = 256,
        site_zoom: int = 6,
    ) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"split={split!r} is not one of {list(SPLIT_OFFSETS)}")
        if length < 1:
            raise ValueError(f"length={length!r} must be >= 1")
        if locations not in LOCATION_CHOICES:
            raise ValueError(f"data.world.locations={locations!r} is not one of {list(LOCATION_CHOICES)}")
        if bands < 1 or chip_size < 1:
            raise ValueError(f"bands={bands!r} and chip_size={chip_size!r} must be >= 1")
        self.length, self.split, self.offset = int(length), split, SPLIT_OFFSETS[split]
        self.bands, self.chip_size, self.world_seed = int(bands), int(chip_size), int(world_seed)
        self.location_kind, self.region = locations, region
        if locations == "sites" and int(sites) < 1:
            raise ValueError(f"data.world.sites={sites!r} must be >= 1 with locations=sites")
        self.sites, self.site_zoom = int(sites), check_zoom(site_zoom)
        if locations == "land":
            from clay_exp.data.worlds.geography import land_mask

            self.land = land_mask()

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

    def generate(self, ids: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """The chips with global ids `ids` (split offset included)."""
        raise NotImplementedError

    # -- locations ------------------------------------------------------------------------------
    def candidate_locations(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Candidate points (lat, lon in float64 degrees), one per id: uniform by area, or in a site."""
        u = hash_uniform(self.world_seed, _LAT, ids, dtype=torch.float64)
        v = hash_uniform(self.world_seed, _LON, ids, dtype=torch.float64)
        if self.location_kind != "sites":
            return torch.rad2deg(torch.asin(2.0 * u - 1.0)), 360.0 * v - 180.0
        site = hash_ints(self.world_seed, _SITE, ids) % self.sites
        x, y = self.site_tiles(site)
        n = 2.0**self.site_zoom
        mx, my = (x.double() + v) / n, (y.double() + u) / n  # uniform in the tile's mercator square
        lat = torch.rad2deg(torch.atan(torch.sinh(torch.pi * (1.0 - 2.0 * my))))
        return lat, 360.0 * mx - 180.0

    def site_tiles(self, site: Tensor) -> tuple[Tensor, Tensor]:
        """The tile (x, y at ``site_zoom``) of each site index: the tile of a uniform-by-area point."""
        u = hash_uniform(self.world_seed, _SITE_LAT, site, dtype=torch.float64)
        v = hash_uniform(self.world_seed, _SITE_LON, site, dtype=torch.float64)
        return lonlat_to_tile(360.0 * v - 180.0, torch.rad2deg(torch.asin(2.0 * u - 1.0)), self.site_zoom)

    def accepts(self, lat: Tensor, lon: Tensor) -> Tensor | None:
        """Which candidate locations this world keeps (None: all)."""
        keep = self.land.is_land(lat, lon) if self.location_kind == "land" else None
        if self.region is not None:
            inside = self.region(lat, lon)
            keep = inside if keep is None else keep & inside
        return keep

    def locations(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Chip centres (lat, lon in float64 degrees): the first accepted candidate of each chip."""
        lat, lon = self.candidate_locations(ids)
        keep = self.accepts(lat, lon)
        if keep is None:
            return lat, lon
        todo = ~keep
        for start in range(1, _MAX_CANDIDATES, _CANDIDATES_PER_ROUND):
            if not bool(todo.any()):
                return lat, lon
            pending = ids[todo]
            k = torch.arange(start, start + _CANDIDATES_PER_ROUND, dtype=torch.int64)
            clat, clon = self.candidate_locations(pending[:, None] + k * _CANDIDATE_STRIDE)  # (P, K)
            ok = self.accepts(clat.flatten(), clon.flatten()).view_as(clat)
            found = ok.any(dim=1)
            first = ok.to(torch.int8).argmax(dim=1)  # the first accepted candidate
            rows = torch.nonzero(todo).flatten()[found]
            lat[rows] = clat[found, first[found]]
            lon[rows] = clon[found, first[found]]
            todo[rows] = False
        if bool(todo.any()):
            raise ValueError(
                f"no location passes this world's constraints (locations={self.location_kind!r}, "
                f"region={self.region!r}) after {_MAX_CANDIDATES} candidates; the allowed area is "
                "(almost) empty: hold out a different fraction or zoom (data.heldout_*), or use "
                "data.world.locations=sphere"
            )
        return lat, lon
