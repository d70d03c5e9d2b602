"""One writer per run folder: an exclusive lock on ``<run>/.lock`` (`RunLock`), which the training
run (`clay_exp.session`) and the tuner's trials (`clay_exp.tuning.trials`) take before they write.

``flock``: the kernel drops the lock when the process dies, so a lock is never stale; a second
process on the same folder is refused (`RunFolderLockedError`) with the owner's pid, host and start.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".lock"


def utc_now() -> str:
    """Now, in UTC, as an ISO 8601 string to the second (the records' and the lock's time stamps)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunFolderLockedError(RuntimeError):
    """Another process is writing this run folder."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.lock`` holding the owner's pid and host.

    The file is never deleted (deleting a flock'ed file lets two processes lock two inodes); its
    content only names the last owner, written by `write_owner` once the run is known to go ahead
    (a refused run leaves the previous owner's name). Locks held by a dead process vanish with it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 4096).decode(errors="replace").strip() or "an unknown process"
            os.close(fd)
            raise RunFolderLockedError(
                f"run folder {self.path.parent} is in use by another run ({owner}); "
                "one writer per folder: wait for it to end, or start a new run (a new folder)"
            ) from None
        self._fd = fd

    def write_owner(self) -> None:
        """Name this process in the lock file (its pid, host, start time) for a refused second run."""
        assert self._fd is not None, "acquire() first"
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(owner).encode(), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
