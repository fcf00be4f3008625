"""One writer per run directory: an exclusive lock held for the whole launch.

``<run_dir>/.lock`` is locked with ``fcntl.flock`` and holds ``{"pid", "host", "since"}`` of the
holder. A second launch of the same run while the first lives stops at once naming that PID and
host. The kernel drops a flock when its process dies (kill -9 included), so a lock file left by a
dead launch is simply taken over; the stale holder is logged.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from lodabench.errors import ConfigError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(
                f"run directory {self.path.parent} is in use by another launch (PID {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')}, since {holder.get('since', '?')}). Wait for it to finish, or stop "
                "it (kill <PID>) and launch again; it resumes from its last checkpoint.") from None
        stale = _holder(fd)
        if stale:
            log.info("taking over the lock of %s left by PID %s on %s (that launch is gone)",
                     self.path.parent, stale.get("pid"), stale.get("host"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, OSError):
        return {}
