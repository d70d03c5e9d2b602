"""An on-disk chip cache: chips extracted once, read back as memory-mapped numpy arrays.

``data=geotiff data.cache=true`` reads every training and validation chip through TorchGeo once
(warp, merge, normalise, nodata fill, lat/lon, time) and keeps the result here; later epochs and
later runs with the same inputs read batches straight from the arrays.

**Why ``.npy`` files in a folder.** numpy writes them and memory-maps them back with no new
dependency; a batch is one fancy index into a memmap (the OS page cache holds the file after the
first epoch, nothing is decoded or decompressed), each DataLoader worker maps the files itself
(nothing large is pickled), and anything can read them (`numpy.load`). zarr or HDF5 would add a
dependency and per-chunk decoding for arrays that are small and read whole chips at a time.

**Layout.** ``<cache_dir>/<prefix>-<key>/`` holds, for each chip set (``train``, ``val``,
``val_heldout``): ``<set>.image.npy`` (N, C, H, W) float32, ``<set>.lat.npy`` / ``<set>.lon.npy``
(N,) float64 and, where acquisition times are known, ``<set>.time.npy`` (N, 4) float32; and
``meta.json``: the settings the key hashes, the chip count of each set (arrays may hold unused
rows past it), the format version.

**The key** is a SHA-256 of the settings the caller passes (for GeoTIFFs: every file's path, size
and modification time, the dataset class and its arguments, bands, CRS, resolution, normalisation
statistics, nodata policy, chip size, set sizes, split and seed) plus `CACHE_FORMAT`: change any of
them and the next run builds a new folder; the old one stays until deleted.

**Atomicity.** A build writes into a sibling ``<name>.tmp-<pid>-<random>`` folder, flushes and
fsyncs every array, writes ``meta.json`` last (fsynced), fsyncs the folder, renames it to its final
name (atomic on one filesystem) and fsyncs the parent. A reader only opens a final-name folder whose
``meta.json`` parses and carries the same key, so an interrupted build (Ctrl-C, a crash, a full
disk) is never read: the next run builds again and removes temporary folders whose process is gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

#: Bump when the layout or the meaning of the arrays changes: old caches are then ignored.
CACHE_FORMAT = 1
META = "meta.json"
#: The arrays kept per chip and their dtypes (`time` only where acquisition times are known).
FIELDS = {"image": np.float32, "lat": np.float64, "lon": np.float64, "time": np.float32}


def file_fingerprints(paths: Iterable[str | Path]) -> list[list[Any]]:
    """``[resolved path, size in bytes, mtime in ns]`` per file, sorted: a file's identity for the key."""
    rows = []
    for path in sorted({str(Path(p).resolve()) for p in paths}):
        stat = os.stat(path)
        rows.append([path, stat.st_size, stat.st_mtime_ns])
    return rows


def settings_key(settings: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the settings (JSON, sorted keys) and the cache format."""
    text = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CachedChips(Dataset):
    """One chip set of a cache folder: ``__getitems__(indices)`` returns a stacked batch dict.

    The arrays are memory-mapped lazily in each process (a worker maps its own; pickling sends only
    the paths), and a batch is copied out of the maps with one fancy index per array.
    """

    def __init__(self, folder: Path, name: str, count: int, fields: Sequence[str]) -> None:
        self.folder, self.name, self.count, self.fields = Path(folder), name, int(count), list(fields)
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {
                f: np.load(self.folder / f"{self.name}.{f}.npy", mmap_mode="r")[: self.count]
                for f in self.fields
            }
        return self._arrays

    def __len__(self) -> int:
        return self.count

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.count):
            raise IndexError(f"chip index out of range [0, {self.count}) in the {self.name} cache")
        return {f: torch.from_numpy(np.ascontiguousarray(a[idx])) for f, a in self.arrays.items()}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


class ChipCache:
    """The cache folder for one set of settings under `cache_dir` (module docstring).

    `load()` returns the chip sets if a complete cache with this key exists, else None;
    `build(sets)` writes them atomically and returns them as `load()` would.
    """

    def __init__(self, cache_dir: str | Path, settings: Mapping[str, Any], prefix: str = "chips") -> None:
        self.cache_dir = Path(cache_dir).resolve()
        self.settings = json.loads(json.dumps(dict(settings), default=str))  # as meta.json stores it
        self.key = settings_key(self.settings)
        self.folder = self.cache_dir / f"{prefix}-{self.key[:16]}"

    def read_meta(self) -> dict[str, Any] | None:
        """The folder's meta.json if it is a complete cache of this key, else None."""
        try:
            meta = json.loads((self.folder / META).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != self.key or meta.get("format") != CACHE_FORMAT:
            return None
        return meta

    def load(self) -> dict[str, CachedChips] | None:
        meta = self.read_meta()
        if meta is None:
            return None
        return {
            name: CachedChips(self.folder, name, info["count"], info["fields"])
            for name, info in meta["sets"].items()
        }

    def remove_stale_builds(self) -> None:
        """Delete temporary folders of this key left by builds whose process is gone."""
        for tmp in self.cache_dir.glob(f"{self.folder.name}.tmp-*"):
            try:
                pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
            except (IndexError, ValueError):
                continue
            if not _process_alive(pid):
                shutil.rmtree(tmp, ignore_errors=True)
                log.info("chip cache: removed %s, left by an interrupted build", tmp)

    def build(self, sets: Mapping[str, tuple[int, Iterable[Mapping[str, Tensor]]]]) -> dict[str, CachedChips]:
        """Write each set from ``(capacity, batches)`` (dicts of ``image``, ``lat``, ``lon``, optional
        ``time`` tensors, at most `capacity` chips in all) and rename the folder into place."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.remove_stale_builds()
        tmp = self.cache_dir / f"{self.folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            meta_sets = {name: self._write_set(tmp, name, capacity, batches)
                         for name, (capacity, batches) in sets.items()}  # fmt: skip
            meta = {"key": self.key, "format": CACHE_FORMAT, "sets": meta_sets, "settings": self.settings}
            with open(tmp / META, "w") as f:
                json.dump(meta, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            _fsync(tmp)
            if self.folder.exists():  # another process finished the same build first, or a bad one
                if self.read_meta() is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return self.load()  # type: ignore[return-value]
                shutil.rmtree(self.folder)
            os.rename(tmp, self.folder)
            _fsync(self.cache_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        loaded = self.load()
        assert loaded is not None
        return loaded

    @staticmethod
    def _write_set(
        folder: Path, name: str, capacity: int, batches: Iterable[Mapping[str, Tensor]]
    ) -> dict[str, Any]:
        arrays: dict[str, np.memmap] = {}
        count = 0
        for batch in batches:
            n = int(batch["image"].shape[0])
            if count + n > capacity:
                raise ValueError(f"{name}: more than the {capacity} chips the cache was sized for")
            if not arrays:
                for field, dtype in FIELDS.items():
                    if field in batch:
                        shape = (capacity, *batch[field].shape[1:])
                        path = folder / f"{name}.{field}.npy"
                        arrays[field] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            for field, array in arrays.items():
                array[count : count + n] = batch[field].numpy()
            count += n
        if count == 0:
            raise ValueError(f"no {name} chip to cache")
        for field, array in arrays.items():
            array.flush()
            _fsync(folder / f"{name}.{field}.npy")
        return {"count": count, "fields": list(arrays)}
