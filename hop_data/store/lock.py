"""One live writer per shard: ``flock`` on local filesystems, a registry within
a process (see docs/store.md, "Locking")."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from pathlib import Path

from .errors import StoreLockedError

_LIVE: set[tuple[str, str]] = set()  # (store, writer id) held by writers in this process
_LIVE_GUARD = threading.Lock()


class ShardLock:
    """Exclusive ownership of one shard.

    Local filesystems: ``flock`` on ``shards/<id>/writer.lock``; the kernel
    drops it when the holder dies, so a SIGKILLed writer leaves no stale lock
    (the file itself stays, holding the last owner's pid for diagnostics).
    Every store: a per-process registry, so one process cannot open a shard twice.
    """

    def __init__(self, key: tuple[str, str], lock_file: Path | None):
        self._key = key
        self._fd: int | None = None
        with _LIVE_GUARD:
            if key in _LIVE:
                raise StoreLockedError(f"{key[0]}: shard {key[1]!r} already has a live writer in this process")
            _LIVE.add(key)
        if lock_file is None:
            return
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            self.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            self.release()
            raise StoreLockedError(
                f"{key[0]}: shard {key[1]!r} is being written by another live writer ({holder}); lock {lock_file}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        with _LIVE_GUARD:
            _LIVE.discard(self._key)
