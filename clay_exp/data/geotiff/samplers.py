"""Samplers over TorchGeo footprints: `LocationFilteredSampler` keeps the queries whose footprint
centre belongs to a chip set (``split=region``: seen or held-out tiles)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from torch.utils.data import Sampler

from clay_exp.data.geotiff.files import GeoSlice
from clay_exp.data.splits import LocationFilter


class LocationFilteredSampler(Sampler[GeoSlice]):
    """The queries of a TorchGeo sampler whose footprint centre passes `keep` (all when None).

    ``length=None``: one pass over a finite sampler (the grid), kept queries only. An int: exactly
    that many kept queries, drawing from the (random) sampler again as often as needed.
    """

    def __init__(
        self,
        sampler: Sampler[GeoSlice],
        dataset: Any,
        keep: LocationFilter | None,
        length: int | None = None,
        chunk: int = 256,
    ) -> None:
        self.sampler, self.dataset, self.keep, self.chunk = sampler, dataset, keep, chunk
        self.kept: list[GeoSlice] | None = None
        if length is None:
            self.kept = [q for batch in self._chunks(iter(sampler)) for q in self._filter(batch)]
        self.length = len(self.kept) if self.kept is not None else int(length)

    def _chunks(self, it: Iterator[GeoSlice]) -> Iterator[list[GeoSlice]]:
        while batch := list(islice(it, self.chunk)):
            yield batch

    def _filter(self, queries: list[GeoSlice]) -> list[GeoSlice]:
        if self.keep is None:
            return queries
        mask = self.keep(*self.dataset.centres(queries)).tolist()
        return [q for q, ok in zip(queries, mask, strict=True) if ok]

    def __iter__(self) -> Iterator[GeoSlice]:
        if self.kept is not None:
            yield from self.kept
            return
        produced = drawn = 0
        while produced < self.length:
            for batch in self._chunks(iter(self.sampler)):
                drawn += len(batch)
                for query in self._filter(batch)[: self.length - produced]:
                    produced += 1
                    yield query
                if produced >= self.length:
                    return
            if produced == 0 and drawn >= 100 * self.length:
                raise ValueError(f"no random chip passes the location filter in {drawn} draws")

    def __len__(self) -> int:
        return self.length
