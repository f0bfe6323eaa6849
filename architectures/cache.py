"""Trained-weight cache under ``$KERAS_XAI_HOME`` (default ``~/.cache/keras_xai``).

An entry is an ``.npz`` of the model's weights, layer by layer, plus a JSON sidecar holding its SHA-256,
the layer names and weight shapes, and metadata. Plain arrays read the same on Keras 2 and Keras 3,
whose own weight files the other cannot always read. Both files are written atomically (temporary
file, then ``os.replace``) and the sidecar last, so an interrupted save leaves no entry. On load, a
missing sidecar, a checksum mismatch, an unreadable file or weights of another architecture mark the
entry corrupt: it is reported and removed, and the caller retrains. A bad file is never used silently.
Entries of earlier versions (Keras ``.weights.h5`` files) are converted on first load.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import weights as weight_files

SUFFIX = ".weights.npz"
_LEGACY_SUFFIX = ".weights.h5"


class CorruptCacheWarning(UserWarning):
    """A cached weight file was incomplete or damaged and will be recomputed."""


def home() -> Path:
    return Path(os.environ.get("KERAS_XAI_HOME", Path.home() / ".cache" / "keras_xai")).expanduser()


def entry_path(architecture: str, dataset: str, recipe_name: str, recipe_key: str, seed: int) -> Path:
    return home() / "models" / f"{architecture}-{dataset}-{recipe_name}-{recipe_key}-seed{seed}{SUFFIX}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save(model, path: Path, metadata: dict) -> None:
    """Store ``model``'s weights at ``path`` with ``metadata`` (JSON-serialisable)."""
    layers = weight_files.layer_weights(model)
    buffer = io.BytesIO()
    np.savez(buffer, *[array for _, arrays in layers for array in arrays])
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    record = {**metadata, "sha256": hashlib.sha256(payload).hexdigest(), "layers": weight_files.layout(layers)}
    atomic_write_text(_sidecar(path), json.dumps(record, indent=2, sort_keys=True))


def _discard(path: Path, reason: str) -> None:
    warnings.warn(f"cached weights {path} are unusable ({reason}); they are removed and will be retrained",
                  CorruptCacheWarning, stacklevel=3)
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)


def _checked_metadata(path: Path) -> dict | None:
    """The sidecar of an entry whose file is complete and unchanged; None (entry discarded) otherwise."""
    sidecar = _sidecar(path)
    if not path.exists() or not sidecar.exists():
        _discard(path, "weights or their metadata file missing: an interrupted save")
        return None
    try:
        metadata = json.loads(sidecar.read_text())
    except (ValueError, OSError) as error:
        _discard(path, f"unreadable metadata: {error}")
        return None
    actual = file_sha256(path)
    if metadata.get("sha256") != actual:
        _discard(path, f"checksum {actual[:12]} differs from the recorded {str(metadata.get('sha256'))[:12]}")
        return None
    return metadata


def load(model, path: Path) -> dict | None:
    """Load cached weights into ``model``; return their metadata, or None when absent or corrupt."""
    if not path.exists() and not _sidecar(path).exists():
        return _convert_legacy(model, path) if path.name.endswith(SUFFIX) else None
    metadata = _checked_metadata(path)
    if metadata is None:
        return None
    expected = weight_files.layout(model)
    difference = weight_files.layout_difference(metadata.get("layers", []), expected, names=True)
    if difference is not None:
        _discard(path, f"saved for another architecture: {difference}")
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = [stored[f"arr_{index}"] for index in range(len(stored.files))]
    except Exception as error:  # zipfile/numpy raise many types for damaged files
        _discard(path, f"unreadable: {type(error).__name__}: {error}")
        return None
    if [list(a.shape) for a in arrays] != [shape for _, shapes in expected for shape in shapes]:
        _discard(path, "its arrays differ from the shapes its metadata records")
        return None
    remaining = iter(arrays)
    weight_files.set_layer_weights(model, [[next(remaining) for _ in shapes] for _, shapes in expected])
    return metadata


def _convert_legacy(model, path: Path) -> dict | None:
    """The entry an earlier version stored for ``path`` (a Keras ``.weights.h5`` file), loaded into
    ``model`` and stored anew at ``path``; None when there is none or it is corrupt."""
    legacy = path.with_name(path.name[: -len(SUFFIX)] + _LEGACY_SUFFIX)
    if not legacy.exists() and not _sidecar(legacy).exists():
        return None
    metadata = _checked_metadata(legacy)
    if metadata is None:
        return None
    try:
        weight_files.load_weights_file(model, legacy)
    except weight_files.WeightsFileError as error:
        _discard(legacy, str(error))
        return None
    save(model, path, {k: v for k, v in metadata.items() if k != "sha256"})
    legacy.unlink()
    _sidecar(legacy).unlink()
    return load(model, path)
