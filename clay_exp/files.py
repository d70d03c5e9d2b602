"""Files that are whole or absent, and disk space that is there when it is needed.

What a run keeps (its record, its checkpoints, the chip cache's arrays and metadata) is written
through here:

* `atomic_write`: the bytes go to ``<target>.tmp-<pid>-<random>`` in the target's own folder (a
  rename within one folder never crosses filesystems, unlike a temp file under ``$TMPDIR``), are
  fsynced, ``os.replace`` puts them in place and the folder is fsynced. A reader, or a process killed
  mid-write, sees the old file or the new one, never a mix; an error (a full disk) removes the temp
  file and leaves the target as it was. Files get mode ``0o666`` less the umask (0644 usually).
* `allocate`: blocks for a file of a known size, taken before the file is memory-mapped, so a full
  disk is an ordinary `DiskFullError` up front instead of a SIGBUS at some later write.
* `SpaceReserve`: a small file allocated while there is room; when the disk is full, a small
  `atomic_write` (the run's final record) is written into it in place and renamed over its target.

`write_bytes` and `allocate` are the only calls here that take new disk space: tests replace them
(``monkeypatch.setattr(files, "write_bytes", ...)``) to simulate a full disk, since a real small
filesystem cannot be mounted in CI.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

#: Marks a temporary file or folder (``<name>.tmp-<pid>-<random>``): never read as data.
TMP_MARK = ".tmp-"
#: The errors of a full disk (or a full quota).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: Size of a `SpaceReserve`: a run record with its config and a long traceback fits many times over.
RESERVE_BYTES = 1 << 20


class DiskFullError(OSError):
    """No space for a file: names it, the size, and that nothing already written was touched."""

    def __init__(self, path: str | Path, size: int, advice: str = "") -> None:
        message = (
            f"no space left on device to write {path} ({size / 1e6:.1f} MB); "
            f"nothing already written was changed{f': {advice}' if advice else ''}"
        )
        super().__init__(errno.ENOSPC, message, str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def write_bytes(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd` at its current offset (the seam where a full disk shows)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def allocate(fd: int, size: int) -> None:
    """Give the file `size` bytes of real blocks now (``posix_fallocate``): writes into them, through
    a memory map too, then need no new space. A filesystem that cannot preallocate is left as is."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return  # no preallocation here (rare: glibc emulates it); a full disk then shows later
        raise


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: str | Path) -> Path:
    """A fresh temporary name beside `target` (same folder, so same filesystem)."""
    target = Path(target)
    return target.with_name(f"{target.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temporary(path: str | Path) -> bool:
    return TMP_MARK in Path(path).name


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete the temp files `atomic_write` left in `folder` when its process was killed mid-write
    (call it only where no other process writes: a locked run folder). Returns what was removed."""
    removed = []
    for path in Path(folder).glob(f"*{TMP_MARK}*"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write(
    target: str | Path,
    data: bytes | memoryview,
    *,
    reserve: SpaceReserve | None = None,
    advice: str = "free space on that disk",
) -> Path:
    """Replace `target` by `data`, atomically and durably (module docstring). On a full disk the
    temp file is removed and, if `reserve` is given and holds enough room, the data are written into
    it instead; otherwise `DiskFullError` (the target unchanged; `advice` says what to do)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides the mode
        try:
            write_bytes(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE and not isinstance(error, DiskFullError):
            if reserve is not None and reserve.fill(target, data):
                return target
            # `from None`: the record's one-line cause is then this message, which names the file
            raise DiskFullError(target, memoryview(data).nbytes, advice) from None
        raise
    fsync_dir(target.parent)
    return target


class SpaceReserve:
    """``<folder>/.<name>.reserve``: `size` bytes allocated while the disk has room, so that one
    small write of `name` still succeeds when it is full (`atomic_write(..., reserve=...)`).

    `fill` writes into the reserve's own blocks (no new space needed on ext4, xfs or tmpfs; a
    copy-on-write filesystem such as btrfs or ZFS cannot promise this), truncates it to the data's
    length and renames it over the target, then tries to make a new reserve.
    """

    def __init__(self, folder: str | Path, name: str, size: int = RESERVE_BYTES) -> None:
        self.path = Path(folder) / f".{name}.reserve"
        self.size = int(size)

    def create(self) -> bool:
        """Allocate the reserve; False (and a warning) if the disk has no room for it now."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                allocate(fd, self.size)
            finally:
                os.close(fd)
        except OSError as error:
            self.path.unlink(missing_ok=True)
            log.warning("could not reserve %d bytes at %s: %s", self.size, self.path, error)
            return False
        return True

    def fill(self, target: Path, data: bytes | memoryview) -> bool:
        """Write `data` into the reserve and rename it to `target`; False if it cannot."""
        if not self.path.is_file() or memoryview(data).nbytes > self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                write_bytes(fd, data)
                os.ftruncate(fd, memoryview(data).nbytes)  # shrinking needs no space
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.path, target)
            fsync_dir(target.parent)
        except OSError as error:
            log.error("the disk is full and the reserve %s could not hold %s: %s", self.path, target, error)
            return False
        log.warning("the disk is full: %s was written into the space reserved for it", target)
        self.create()  # for a later write, if space was freed meanwhile
        return True

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def find_below(root: str | Path, relative: str) -> list[Path]:
    """Every file ``<folder>/<relative>`` below `root`, sorted. Symlinked folders are followed (a
    sweep linked into a study folder counts), each real folder once (a link loop ends)."""
    found, seen = [], set()
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        candidate = Path(folder) / relative
        if candidate.is_file():
            found.append(candidate)
    return sorted(found)
