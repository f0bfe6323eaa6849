"""Atomic JSON/CSV writers and a forgiving JSON reader, shared by the CLI and the benchmark."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np

from architectures.cache import atomic_write_text


def jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, payload) -> Path:
    atomic_write_text(Path(path), json.dumps(payload, indent=1, default=jsonable))
    return Path(path)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when the file is absent or damaged (invalid JSON, or JSON
    that is not an object). A damaged file gets a one-line warning naming it and is treated as absent:
    the files read here hold results of earlier commands, and the commands rewrite them."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        problem = f"invalid JSON: {error}"
    else:
        if isinstance(payload, dict):
            return payload
        problem = f"a JSON {type(payload).__name__}, not an object"
    print(f"warning: {path} is damaged ({problem}); going on as if it were absent", file=sys.stderr)
    return None


def write_csv(path: Path, header: list, rows) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for v in row])
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)


def write_images_csv(path: Path, images: np.ndarray, labels=None, names=None) -> Path:
    """Images as CSV rows (optional name and label, then the pixels in row-major order, 0-255 integers)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)
    flat = images.reshape(len(images), -1)
    header = (["name"] if names is not None else []) + (["label"] if labels is not None else []) + \
        [f"p{i}" for i in range(flat.shape[1])]
    rows = []
    for k, pixels in enumerate(flat):
        rows.append(([names[k]] if names is not None else []) + ([int(labels[k])] if labels is not None else [])
                    + pixels.tolist())
    return write_csv(path, header, rows)
