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
rows past it), the format version and, per array, its shape, dtype, size in bytes and SHA-256.

**The key** is a SHA-256 of the settings the caller passes (for GeoTIFFs: every file's path, size
and modification time, the dataset class and its arguments, bands, CRS, resolution, normalisation
statistics, nodata policy, chip size, set sizes, split and seed) plus `CACHE_FORMAT`: change any of
them and the next run builds a new folder. Folders of the same prefix that no run has used for
``max_age_days`` (``data.cache_max_age_days``) are removed when a cache is opened.

**Atomicity.** A build writes into a sibling ``<name>.tmp-<pid>-<random>-<host>`` folder, reserves
each array's blocks before mapping it (``posix_fallocate``: a full disk is a `DiskFullError` naming
the file, not a SIGBUS), flushes and fsyncs every array, writes ``meta.json`` last (fsynced), fsyncs
the folder, renames it to its final name (atomic on one filesystem) and fsyncs the parent. When two
processes build the same key, the second finds the first's folder in place, checks it and uses it.
An interrupted build (Ctrl-C, a crash, a full disk) is never read: the next run builds again and
removes temporary folders whose process is gone (on this host; another host's only once untouched
for `FOREIGN_BUILD_STALE_S`, since its pid means nothing here).

**Integrity.** Every reuse checks each array against ``meta.json`` (present, byte size, shape and
dtype in its header, SHA-256 of the file): a truncated, overwritten or zeroed array is reported
(``chip cache: <file> ...: the cache is damaged, rebuilding``) and the cache rebuilt, instead of
failing at the first batch or, worse, training on damaged chips. The check reads each file once per
run (the page cache then serves the first epoch).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from clay_exp import files
from clay_exp.files import NO_SPACE, TMP_MARK, DiskFullError, atomic_write, fsync_dir

log = logging.getLogger(__name__)

#: Bump when the layout or the meaning of the arrays changes: old caches are then ignored.
#: 2: meta.json holds each array's shape, dtype, byte size and SHA-256 (checked on every reuse).
CACHE_FORMAT = 2
#: A temporary build folder of another host is removed only once untouched this long (seconds).
FOREIGN_BUILD_STALE_S = 2 * 24 * 3600
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
            self._arrays = {f: self._map(self.folder / f"{self.name}.{f}.npy") for f in self.fields}
        return self._arrays

    def _map(self, path: Path) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r")[: self.count]
        except (OSError, ValueError) as error:  # damaged after the check at open: name the file
            raise ValueError(
                f"chip cache: cannot read {path} ({type(error).__name__}: {error}); delete "
                f"{self.folder} and run again to rebuild it"
            ) from error

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

    def __init__(
        self,
        cache_dir: str | Path,
        settings: Mapping[str, Any],
        prefix: str = "chips",
        max_age_days: float | None = None,
    ) -> None:
        if max_age_days is not None and not max_age_days > 0:
            raise ValueError(f"cache max_age_days={max_age_days!r} must be a positive number of days or null")
        self.cache_dir = Path(cache_dir).resolve()
        self.settings = json.loads(json.dumps(dict(settings), default=str))  # as meta.json stores it
        self.key = settings_key(self.settings)
        self.prefix = prefix
        self.folder = self.cache_dir / f"{prefix}-{self.key[:16]}"
        self.max_age_days = max_age_days

    def read_meta(self) -> dict[str, Any] | None:
        """The folder's meta.json if it is a complete cache of this key, else None."""
        try:
            meta = json.loads((self.folder / META).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != self.key or meta.get("format") != CACHE_FORMAT:
            return None
        return meta

    def damage(self, meta: Mapping[str, Any]) -> str | None:
        """What is wrong with the folder's arrays against `meta` (the first problem), or None."""
        try:
            arrays = [info for chip_set in meta["sets"].values() for info in chip_set["arrays"].values()]
            expected = [(info["file"], list(info["shape"]), info["dtype"], info["bytes"], info["sha256"])
                        for info in arrays]  # fmt: skip
        except (KeyError, TypeError, AttributeError):
            return f"{self.folder / META} does not describe its arrays"
        for name, shape, dtype, size, digest in expected:
            path = self.folder / name
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != size:
                return f"{path} is {path.stat().st_size} bytes, meta.json says {size}"
            try:
                header = np.load(path, mmap_mode="r")
                found = (list(header.shape), header.dtype.str)
                del header
            except (OSError, ValueError) as error:
                return f"{path} is not a readable .npy file ({type(error).__name__}: {error})"
            if found != (shape, dtype):
                return f"{path} holds shape {found[0]} {found[1]}, meta.json says {shape} {dtype}"
            if _sha256(path) != digest:
                return f"{path} does not match its SHA-256 in meta.json (its content changed)"
        return None

    def load(self) -> dict[str, CachedChips] | None:
        """The chip sets if a complete, undamaged cache of this key exists, else None (a damaged
        one is reported and left to `build`, which replaces it)."""
        meta = self.read_meta()
        if meta is None:
            return None
        problem = self.damage(meta)
        if problem is not None:
            log.warning("chip cache: %s: the cache is damaged, rebuilding %s", problem, self.folder)
            return None
        self.mark_used()
        return self._sets(meta)

    def _sets(self, meta: Mapping[str, Any]) -> dict[str, CachedChips]:
        return {
            name: CachedChips(self.folder, name, info["count"], info["fields"])
            for name, info in meta["sets"].items()
        }

    def mark_used(self) -> None:
        """Note the time of this use (meta.json's mtime) and remove caches unused for too long."""
        with contextlib.suppress(OSError):  # a read-only cache can still be read
            os.utime(self.folder / META)
        self.prune()

    def prune(self) -> list[Path]:
        """Remove this prefix's other cache folders that no run used for `max_age_days`."""
        if self.max_age_days is None:
            return []
        oldest = time.time() - self.max_age_days * 86400
        pattern = re.compile(rf"{re.escape(self.prefix)}-[0-9a-f]{{16}}")
        removed = []
        for folder in self.cache_dir.iterdir():
            if folder == self.folder or not pattern.fullmatch(folder.name) or not folder.is_dir():
                continue
            try:
                used = (folder / META).stat().st_mtime if (folder / META).exists() else folder.stat().st_mtime
            except OSError:
                continue
            if used < oldest and self._discard(folder):
                removed.append(folder)
                log.info("chip cache: removed %s, unused for over %s days", folder, self.max_age_days)
        return removed

    def _discard(self, folder: Path) -> bool:
        """Rename `folder` to a temporary name (readers never see it half-deleted), then delete it."""
        doomed = self.cache_dir / _temporary_name(folder.name)
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            return False  # another process removed it first
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def remove_stale_builds(self) -> None:
        """Delete temporary folders of this key left by builds whose process is gone: on this host,
        when its pid is not running; from another host, once untouched for `FOREIGN_BUILD_STALE_S`."""
        host = socket.gethostname()
        for tmp in self.cache_dir.glob(f"{self.folder.name}{TMP_MARK}*"):
            try:
                pid, _, builder_host = [*tmp.name.rsplit(TMP_MARK, 1)[1].split("-", 2), "", ""][:3]
                pid_alive = _process_alive(int(pid))
                age = time.time() - tmp.stat().st_mtime
            except (ValueError, OSError):
                continue
            gone = not pid_alive if builder_host in ("", host) else age > FOREIGN_BUILD_STALE_S
            if gone:
                shutil.rmtree(tmp, ignore_errors=True)
                log.info("chip cache: removed %s, left by an interrupted build", tmp)

    def build(self, sets: Mapping[str, tuple[int, Iterable[Mapping[str, Tensor]]]]) -> dict[str, CachedChips]:
        """Write each set from ``(capacity, batches)`` (dicts of ``image``, ``lat``, ``lon``, optional
        ``time`` tensors, at most `capacity` chips in all) and rename the folder into place."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.remove_stale_builds()
        tmp = self.cache_dir / _temporary_name(self.folder.name)
        tmp.mkdir()
        try:
            meta_sets = {name: self._write_set(tmp, name, capacity, batches)
                         for name, (capacity, batches) in sets.items()}  # fmt: skip
            meta = {"key": self.key, "format": CACHE_FORMAT, "sets": meta_sets, "settings": self.settings}
            atomic_write(tmp / META, json.dumps(meta, indent=1).encode())
            fsync_dir(tmp)
            self._install(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        meta = self.read_meta()  # ours, or another process's that `_install` checked
        if meta is None:
            raise RuntimeError(f"chip cache: {self.folder} vanished right after it was built")
        self.mark_used()
        return self._sets(meta)

    def _install(self, tmp: Path) -> None:
        """Rename the finished build into place. If a folder is there already, another process
        finished the same build first (keep it, drop ours) or it is a damaged cache (replace it)."""
        for _ in range(5):
            try:
                os.rename(tmp, self.folder)  # fails on a non-empty folder: never half-replaces one
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                fsync_dir(self.cache_dir)
                return
            meta = self.read_meta()
            if meta is not None and self.damage(meta) is None:
                log.info("chip cache: %s was built by another process meanwhile; using it", self.folder)
                shutil.rmtree(tmp, ignore_errors=True)
                return
            self._discard(self.folder)
        raise RuntimeError(f"chip cache: could not put {tmp} in place of {self.folder}")

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
                        arrays[field] = _reserved_memmap(folder / f"{name}.{field}.npy", dtype, shape)
            for field, array in arrays.items():
                array[count : count + n] = batch[field].numpy()
            count += n
        if count == 0:
            raise ValueError(f"no {name} chip to cache")
        described = {}
        for field, array in arrays.items():
            array.flush()
            path = folder / f"{name}.{field}.npy"
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            described[field] = {
                "file": path.name,
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
        return {"count": count, "fields": list(arrays), "arrays": described}


def _temporary_name(name: str) -> str:
    """``<name>.tmp-<pid>-<random>-<host>``: whose build (or removal) this is (`remove_stale_builds`)."""
    return f"{name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}-{socket.gethostname()}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _reserved_memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file mapped for writing, its blocks reserved first: writing through a map
    into space the disk does not have kills the process with SIGBUS; here a full disk is a
    `DiskFullError` naming the file before the first chip is written."""
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        fd = os.open(path, os.O_RDWR)
        try:
            files.allocate(fd, os.fstat(fd).st_size)  # through the module: tests replace it
        finally:
            os.close(fd)
    except OSError as error:
        if error.errno in NO_SPACE:
            advice = (
                "the build was stopped and its folder removed; free space, or set data.cache_dir to "
                "a disk with room (or data.cache=false)"
            )
            raise DiskFullError(path, int(np.prod(shape)) * np.dtype(dtype).itemsize, advice) from None
        raise
    return array
