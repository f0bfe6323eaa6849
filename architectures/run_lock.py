"""One run per output folder: a lock file naming its holder (pid, host, start time).

``with RunLock(folder): ...`` holds an exclusive ``flock`` on ``folder/.lock`` and writes the holder
into it. A second run into the folder fails at once with :class:`RunLockedError`, naming the holder.
The kernel drops the lock when its process dies, so a run killed with SIGKILL leaves only the file
with its holder's details: the next run takes it over, says so, and removes the half-written
temporary files (``.*.tmp``, see :func:`architectures.cache.atomic_write_bytes`) that run left. A finished run empties the file
(never deletes it: a run waiting on the old file would otherwise lock a file nobody else sees).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another run holds the output folder."""


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


class RunLock:
    """Context manager holding ``folder/.lock`` for the duration of a run."""

    def __init__(self, folder: str | os.PathLike, log: Callable[[str], None] = print):
        self.path = Path(folder) / LOCK_NAME
        self.log = log
        self._handle = None

    def _holder(self, handle) -> dict:
        handle.seek(0)
        try:
            return json.loads(handle.read() or "{}")
        except ValueError:
            return {}

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder(handle)
            handle.close()
            who = _describe(holder) if holder else "just starting"
            raise RunLockedError(f"{self.path.parent} is in use by another run ({who}); wait for it to finish or "
                                 "use another --out") from None
        previous = self._holder(handle)
        if previous:  # left by a run that did not finish: its process is gone, or it would hold the lock
            self.log(f"taking over the lock of a run that did not finish ({_describe(previous)})")
            for partial in self.path.parent.glob(".*.tmp"):  # its atomic writes in progress (cache.atomic_write_*)
                partial.unlink()
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, handle)
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.close()  # closing drops the flock
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
