"""What determines an experiment's stored numbers, as plain JSON: the run key.

A stored result is reused only when every part of its key is equal: the model (architecture and a
content hash of its weights), every image (index, pixels and label), the methods and all their
parameters, the patterns PatternNet uses (or what they are fitted on), the engine, the seed, the batch
size (TF's kernels give last-bit differences between batch sizes) and the numerics (TensorFlow, Keras
and NumPy versions, device kind). :func:`differences` says in words what changed between two keys.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json

import numpy as np
import tensorflow as tf

from keras_xai import graph

# Bump when a change to the code changes stored numbers: stored results are then refused as stale.
RESULTS_VERSION = 3


def digest(*arrays) -> str:
    """Short content hash of arrays (dtype, shape and bytes)."""
    hasher = hashlib.blake2b(digest_size=12)
    for array in arrays:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def weights_digest(model) -> str:
    return digest(*model.get_weights())


def architecture_digest(model) -> str:
    """Hash of the model's layers, their configuration and connections (``to_json``)."""
    try:
        description = model.to_json()
    except (NotImplementedError, TypeError, ValueError):  # a custom layer without get_config
        description = json.dumps([(type(layer).__name__, layer.name, [w.shape.as_list() if hasattr(w.shape, "as_list")
                                                                      else list(w.shape) for w in layer.weights])
                                  for layer in model.layers])
    return hashlib.blake2b(description.encode(), digest_size=12).hexdigest()


def image_record(image: np.ndarray, label) -> str:
    """What identifies one input: its pixels (as the model sees them) and its true class."""
    return digest(np.asarray(image, np.float32), np.asarray(label, np.int64))


def numerics(model) -> dict:
    gpus = tf.config.list_logical_devices("GPU")
    return {"tensorflow": tf.__version__, "keras": graph.keras_of(model).__version__, "numpy": np.__version__,
            "device": f"{len(gpus)} GPU" if gpus else "CPU"}


def engine_version(engine: str) -> str | None:
    """The installed version of a reference engine's package (its worker runs this installation)."""
    package = {"innvestigate": "innvestigate", "deeplift": "deeplift"}.get(engine)
    if package is None:
        return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def canonical(settings: dict) -> dict:
    """``settings`` as it reads back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=_plain))


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def key_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(canonical(settings), sort_keys=True).encode()).hexdigest()[:20]


def differences(stored: dict, now: dict, prefix: str = "") -> list:
    """Human-readable differences between two canonical keys, e.g. ``model.weights: 3fa1... -> 77c0...``."""
    out = []
    for name in sorted(set(stored) | set(now)):
        label = f"{prefix}{name}"
        old, new = stored.get(name, "<absent>"), now.get(name, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            out += differences(old, new, label + ".")
        elif name == "images" and isinstance(old, list) and isinstance(new, list):
            out += _image_differences(old, new)
        elif old != new:
            out.append(f"{label}: {_short(old)} -> {_short(new)}")
    return out


def _image_differences(old: list, new: list) -> list:
    """Images are [index, record] pairs in run order."""
    if [i for i, _ in old] != [i for i, _ in new]:
        return [f"images: {len(old)} stored ({_short([i for i, _ in old])}) -> {len(new)} now "
                f"({_short([i for i, _ in new])})"]
    changed = [index for (index, a), (_, b) in zip(old, new) if a != b]
    return [f"images: pixels or label of image(s) {_short(changed)} differ"] if changed else []


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."
