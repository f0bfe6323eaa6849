"""Per-image result files that make long runs resumable, reused only when provably the same.

An experiment's folder holds ``run.json`` (the run key, :mod:`sanity.run_key`) and one small file per
image (``<index>.npz``), written atomically (temporary file + ``os.replace``) as soon as the image is
done. Each file records the key's hash, its image index and the image's record (pixels and label).

- A rerun with the same key skips finished images.
- A rerun with another key is refused, naming what differs (weights, images, methods, ...): use
  another folder, or ``overwrite=True`` (``--overwrite``) to delete the old results and recompute.
  Only the batch size is taken over from the stored run, with a message: results depend on it in
  the last bits, and keeping it is what makes a resumed run equal an uninterrupted one (with
  ``overwrite``, the asked batch size wins and the results are recomputed).
- One run at a time: the folder is locked (:class:`architectures.run_lock.RunLock`) while open.
- A file holding another image, another run's results, or a directory in a file's place is refused
  the same way; an unreadable file is reported and recomputed.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from architectures.cache import atomic_write_bytes, atomic_write_text
from architectures.run_lock import RunLock

from .run_key import canonical, differences, key_hash

MANIFEST = "run.json"
_META = ("__key__", "__index__", "__image__")


class StoredResultsError(ValueError):
    """Results stored in the output folder are not those of this run; the message says what differs."""


def npz_bytes(arrays: dict) -> bytes:
    """A compressed ``.npz`` (``np.load`` reads it) whose bytes depend on the arrays only: unlike
    ``np.savez_compressed``, no time stamps, so equal results give equal files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asarray(value), allow_pickle=False)
            archive.writestr(entry, array.getvalue())
    return buffer.getvalue()


class ImageResults:
    """The per-image files of one experiment.

    Parameters
    ----------
    folder : the experiment's folder (created here).
    key : everything that changes the numbers (see :mod:`sanity.run_key`); ``key["batch_size"]``
        is the requested batch size.
    overwrite : delete stored results of another key instead of refusing.
    log : where messages go (``print`` by default).
    """

    def __init__(self, folder, key: dict, overwrite: bool = False, log: Callable[[str], None] = print):
        self.folder = Path(folder)
        self.key = canonical(key)
        self.overwrite = overwrite
        self.log = log
        if self.folder.exists() and not self.folder.is_dir():
            raise StoredResultsError(f"{self.folder} is a file, not a results folder; use another --out")
        self._lock = RunLock(self.folder, log).acquire()  # released by close()
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise
        self.key_hash = key_hash(self.key)

    def close(self) -> None:
        self._lock.release()

    @property
    def batch_size(self) -> int:
        return int(self.key["batch_size"])

    def _open(self) -> None:
        manifest = self.folder / MANIFEST
        stored_files = sorted(self.folder.glob("*.npz"))
        stored = self._read_manifest(manifest)
        if stored is None and not stored_files:
            self._write_manifest(manifest)
            return
        if stored is None:
            problems = [f"{len(stored_files)} result files without {MANIFEST} (an earlier version of this project)"]
        else:
            problems = differences({**stored, "batch_size": self.key["batch_size"]}, self.key)
            other_batch_size = stored.get("batch_size") != self.key["batch_size"]
            if other_batch_size and self.overwrite:
                problems.append(f"batch_size: {stored.get('batch_size')} -> {self.key['batch_size']}")
            elif other_batch_size and not problems:
                self.log(f"resuming {self.folder} with its batch size {stored.get('batch_size')} (asked: "
                         f"{self.key['batch_size']}): results differ in the last bits between batch sizes; use "
                         "another --out, or --overwrite to recompute with the asked one")
                self.key["batch_size"] = stored["batch_size"]
        if problems and not self.overwrite:
            raise StoredResultsError(f"{self.folder} holds results of other settings ({'; '.join(problems)}); use "
                                     "another --out, or --overwrite to delete them and recompute")
        if problems:
            for path in stored_files:
                path.unlink()
            self.log(f"--overwrite: deleted {len(stored_files)} results of other settings in {self.folder} "
                     f"({'; '.join(problems)})")
        self._write_manifest(manifest)

    def _read_manifest(self, path: Path):
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            if self.overwrite:
                return {}
            raise StoredResultsError(f"{path} is damaged ({type(error).__name__}); the results beside it cannot be "
                                     "checked: use another --out, or --overwrite to recompute them") from None

    def _write_manifest(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"key": self.key}, indent=1, sort_keys=True))

    def path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.npz"

    def save(self, index: int, record: str, arrays: dict) -> None:
        """Store a dict of arrays (keys are strings) for image ``index`` whose record is ``record``."""
        meta = {"__key__": np.array(self.key_hash), "__index__": np.array(index, np.int64),
                "__image__": np.array(record)}
        atomic_write_bytes(self.path(index), npz_bytes({**meta, **arrays}))

    def load(self, index: int, record: str) -> dict | None:
        """The arrays stored for image ``index``; None when absent or unreadable (recomputed)."""
        path = self.path(index)
        if path.is_dir():
            raise StoredResultsError(f"{path} is a directory where a result file belongs; remove it or use "
                                     "another --out")
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
            self.log(f"unreadable result file {path} ({type(error).__name__}: {error}); recomputing it")
            return None
        problem = self._mismatch(arrays, index, record)
        if problem is None:
            return {name: value for name, value in arrays.items() if name not in _META}
        if not self.overwrite:
            raise StoredResultsError(f"{path} {problem}; remove it, use another --out, or --overwrite to recompute it")
        self.log(f"--overwrite: {path} {problem}; recomputing it")
        return None

    def _mismatch(self, arrays: dict, index: int, record: str):
        if any(name not in arrays for name in _META):
            return "was written by an earlier version of this project"
        if int(arrays["__index__"]) != index:
            return f"holds the results of image {int(arrays['__index__'])}, not of image {index}"
        if str(arrays["__key__"]) != self.key_hash:
            return f"was written by another run (key {arrays['__key__']}, this run {self.key_hash})"
        if str(arrays["__image__"]) != record:
            return f"was computed on other pixels or another label for image {index}"
        return None


class MemoryResults:
    """In-memory stand-in for :class:`ImageResults` when no output folder is given."""

    def __init__(self, batch_size: int):
        self.batch_size = int(batch_size)
        self._data = {}

    def save(self, index, record, arrays):
        self._data[index] = dict(arrays)

    def load(self, index, record):
        return self._data.get(index)

    def close(self):
        pass
