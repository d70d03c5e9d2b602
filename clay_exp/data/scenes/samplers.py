"""Samplers over several scenes, each in its own CRS: random footprints (a scene drawn in proportion
to its area), the chip grid of every scene in one fixed shuffled order, and the region split's
filter that keeps a chip only if it lies wholly in its set's tiles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from shapely import Polygon
from torch.utils.data import Sampler
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from clay_exp.data.geotiff.files import GeoSlice
from clay_exp.data.geotiff.samplers import LocationFilteredSampler
from clay_exp.data.scenes.datasets import SceneQuery


class SceneRandomSampler(Sampler[SceneQuery]):
    """`length` random footprints: a scene drawn in proportion to its area, then a footprint in it
    (inside its region of interest: `common_bounds`)."""

    def __init__(
        self,
        rasters: Sequence[RasterDataset],
        rois: Sequence[Polygon],
        size: int,
        length: int,
        generator: torch.Generator | None = None,
    ) -> None:
        self.samplers = [
            RandomGeoSampler(r, size, length=length, roi=roi, generator=generator)
            for r, roi in zip(rasters, rois, strict=True)
        ]
        self.weights = torch.tensor([float(s.areas.sum()) for s in self.samplers], dtype=torch.float64)
        self.length, self.generator = int(length), generator

    def __iter__(self) -> Iterator[SceneQuery]:
        footprints = [iter(s) for s in self.samplers]
        for _ in range(self.length):
            scene = int(torch.multinomial(self.weights, 1, generator=self.generator))
            yield scene, next(footprints[scene])

    def __len__(self) -> int:
        return self.length


def inside(query: GeoSlice, bounds: Sequence[float], res: Sequence[float]) -> bool:
    """Whether the footprint lies within `bounds` (xmin, ymin, xmax, ymax), up to a hundredth of a pixel."""
    xmin, ymin, xmax, ymax = bounds
    ex, ey = res[0] / 100, res[1] / 100
    x, y = query[0], query[1]
    return x.start >= xmin - ex and x.stop <= xmax + ex and y.start >= ymin - ey and y.stop <= ymax + ey


class SceneGridSampler(Sampler[SceneQuery]):
    """Every scene's chip grid (stride = chip, TorchGeo's `GridGeoSampler`) in one order shuffled with
    `seed`, so that any first part of it spreads over all scenes. Only whole chips: TorchGeo 0.8's
    grid also yields a last row and column that reach past the raster (read as nodata)."""

    def __init__(
        self, rasters: Sequence[RasterDataset], rois: Sequence[Polygon], size: int, seed: int = 0
    ) -> None:
        grid = [
            (i, q)
            for i, (r, roi) in enumerate(zip(rasters, rois, strict=True))
            for q in GridGeoSampler(r, size, size, roi=roi)
            if inside(q, roi.bounds, r.res)
        ]
        order = torch.randperm(len(grid), generator=torch.Generator().manual_seed(seed)).tolist()
        self.queries = [grid[i] for i in order]

    def __iter__(self) -> Iterator[SceneQuery]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)


class WholeFootprintSampler(LocationFilteredSampler):
    """`LocationFilteredSampler` that keeps a footprint only if its centre and four corners all pass:
    the chip lies wholly in the set's tiles (exact while a chip is narrower than a tile)."""

    def _filter(self, queries: list[SceneQuery]) -> list[SceneQuery]:
        if self.keep is None:
            return queries
        lat, lon = self.dataset.points(queries, corners=True)
        mask = self.keep(lat.flatten(), lon.flatten()).view(-1, 5).all(dim=1).tolist()
        return [q for q, ok in zip(queries, mask, strict=True) if ok]
