"""Weights and model files a user hands us, on Keras 2 or Keras 3: one loader with clear errors.

:func:`load_weights_file` reads Keras 2 HDF5 weights (``save_weights("x.h5")``, or a whole model saved
as ``.h5``), ``.weights.h5`` files (Keras 2.13+ and Keras 3) and ``.keras`` model files. Each Keras
chooses its reader by the file name, so the file is given the name its contents need, and a failure
becomes a :class:`WeightsFileError` naming the file and what is wrong.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from keras_xai import graph

SUFFIXES = (".h5", ".weights.h5", ".keras")
# HDF5 weight files by their top-level entries: the group of the model's layers and who writes it.
_HDF5_LAYOUTS = {
    "model_weights": "legacy HDF5 model file, model.save('x.h5')",
    "layers": ".weights.h5 file of Keras 3 or tf-keras 2.16+",
    "_layer_checkpoint_dependencies": ".weights.h5 file of Keras 2.13-2.15",
}
_KERAS3_TO_KERAS2 = ("Keras 2 cannot read Keras 3 files: load the model with Keras 3 and save it as "
                     "model.save('file.h5'), a legacy HDF5 file both Kerases read")


class WeightsFileError(ValueError):
    """A weights or model file cannot be loaded into a model; the message names the file and why."""


class MissingWeightsFileError(WeightsFileError, FileNotFoundError):
    """The weights or model file does not exist."""


# --- a model's weights, layer by layer ---------------------------------------------------------

def _weight_layers(model) -> list:
    """(path, layer) of every layer holding weights, nested models flattened, in layer order."""
    found = []

    def walk(layers, prefix):
        for layer in layers:
            if graph.is_model(layer):
                walk(layer.layers, f"{prefix}{layer.name}/")
            elif layer.weights:
                found.append((prefix + layer.name, layer))

    walk(model.layers, "")
    return found


def layer_weights(model) -> list:
    """``[(layer path, [arrays])]`` for every layer holding weights (nested models flattened).

    Both Kerases order a layer's own weights alike (LSTM: kernel, recurrent kernel, bias), unlike
    ``model.get_weights()``: Keras 2 lists every trainable weight of the model first.
    """
    return [(name, layer.get_weights()) for name, layer in _weight_layers(model)]


def layout(model_or_weights) -> list:
    """``[[layer path, [shape, ...]], ...]`` of a model (or of its :func:`layer_weights`): what must
    agree for weights to fit a model."""
    pairs = model_or_weights if isinstance(model_or_weights, list) else layer_weights(model_or_weights)
    return [[name, [list(np.shape(w)) for w in weights]] for name, weights in pairs]


def set_layer_weights(model, weights: list) -> None:
    """Inverse of :func:`layer_weights`: ``weights[i]`` (a list of arrays) goes to the i-th weight layer."""
    layers = _weight_layers(model)
    if len(layers) != len(weights):
        raise ValueError(f"model {model.name!r} has {len(layers)} layers with weights, got {len(weights)}")
    for (_, layer), arrays in zip(layers, weights):
        layer.set_weights(arrays)


def layout_difference(found: list, expected: list, names: bool = False) -> str | None:
    """How two :func:`layout` lists differ, in words (None when they agree); layer names count
    only with ``names``."""
    if len(found) != len(expected):
        return f"{len(found)} layers with weights, the model has {len(expected)}"
    for index, ((name, shapes), (model_name, model_shapes)) in enumerate(zip(found, expected)):
        if [list(s) for s in shapes] != [list(s) for s in model_shapes]:
            return (f"layer {index} ({name!r}) has weights of shapes {shapes}, the model's layer "
                    f"{model_name!r} needs {model_shapes}")
        if names and name != model_name:
            return f"layer {index} is {name!r}, the model's is {model_name!r}"
    return None


# --- loading ------------------------------------------------------------------------------------

def load_weights_file(model, path) -> Path:
    """Load the weights in ``path`` into ``model`` (in place); return the file's path.

    Parameters
    ----------
    model : keras.Model
        A built model of the architecture the file was saved from (Keras 2 or Keras 3).
    path : str or os.PathLike
        A Keras 2 ``.h5`` weights or model file, a ``.weights.h5`` file, or a ``.keras`` model file
        (its weights are copied once every layer's weight shapes are checked).

    Raises
    ------
    MissingWeightsFileError
        If ``path`` does not exist (also a ``FileNotFoundError``).
    WeightsFileError
        If ``path`` is a directory, is damaged or not a Keras file, does not fit ``model``, or is a
        Keras 3 model file and ``model`` a Keras 2 model. ``model``'s weights are then unchanged.
    """
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise MissingWeightsFileError(f"weights file {path} does not exist")
    if path.is_dir():
        raise WeightsFileError(f"{path} is a directory; expected a weights or model file ({', '.join(SUFFIXES)})")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise WeightsFileError(f"{path} is not a readable .keras model file (a zip archive): damaged or truncated")
    before = model.get_weights()
    try:
        if zipfile.is_zipfile(path):
            _load_model_file(model, path)
        else:
            _load_hdf5(model, path)
    except BaseException:
        model.set_weights(before)  # a failed load leaves no half-loaded model behind
        raise
    return path


def _keras_name(model) -> str:
    return f"Keras {graph.keras_of(model).__version__}"


def _load_model_file(model, path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            written_by = str(json.loads(archive.read("metadata.json")).get("keras_version", "?"))
    except (KeyError, ValueError, zipfile.BadZipFile) as error:
        raise WeightsFileError(f"{path} is a zip file but not a .keras model file ({error})") from None
    if written_by.split(".")[0] in ("3", "4") and graph.keras_major(model) < 3:
        raise WeightsFileError(f"{path} was written by Keras {written_by}; model {model.name!r} is a "
                               f"{_keras_name(model)} model. {_KERAS3_TO_KERAS2}")
    try:
        with _named(path, ".keras") as usable:
            saved = graph.keras_of(model).models.load_model(str(usable), compile=False)
    except Exception as error:  # Keras raises many types for files it cannot rebuild
        raise WeightsFileError(f"{path} (written by Keras {written_by}) could not be read by "
                               f"{_keras_name(model)}: {type(error).__name__}: {error}") from error
    found = layer_weights(saved)
    difference = layout_difference(layout(found), layout(model))
    if difference is not None:
        raise WeightsFileError(f"{path} holds model {saved.name!r}, which does not fit model {model.name!r}: "
                               f"{difference}")
    set_layer_weights(model, [weights for _, weights in found])


def _load_hdf5(model, path: Path) -> None:
    try:
        with h5py.File(path, "r") as file:
            if "layer_names" in file.attrs:
                group, kind = None, "Keras 2 HDF5 weights file, save_weights('x.h5')"
            else:
                group = next((name for name in _HDF5_LAYOUTS if name in file), None)
                if group is None:
                    raise WeightsFileError(f"{path} is an HDF5 file but holds no Keras weights "
                                           f"(top-level entries: {sorted(file.keys())})")
                kind = _HDF5_LAYOUTS[group]
            arrays = _float_arrays(file[group] if group else file)
    except OSError as error:
        raise WeightsFileError(f"{path} is not a readable HDF5 file (damaged, truncated or not HDF5): "
                               f"{error}") from None
    # Keras picks its reader by the suffix: legacy HDF5 must be named .h5, the rest .weights.h5.
    legacy = group in (None, "model_weights")
    with _named(path, ".h5" if legacy else ".weights.h5") as usable:
        try:
            model.load_weights(str(usable))
        except Exception as error:  # h5py/Keras raise many types for files that do not fit
            hint = f" {_KERAS3_TO_KERAS2}" if group == "layers" and graph.keras_major(model) < 3 else ""
            reason = f"{type(error).__name__}: {str(error).rstrip('.')}"
            raise WeightsFileError(f"{path} ({kind}) could not be loaded into model {model.name!r} by "
                                   f"{_keras_name(model)}: {reason}.{hint}") from error
    # The .weights.h5 readers skip arrays of layers the model lacks: a bigger model's file loads silently.
    left = Counter(map(_digest, arrays)) - Counter(map(_digest, model.get_weights()))
    if left:
        raise WeightsFileError(f"{path} holds {sum(left.values())} weight arrays that model {model.name!r} has no "
                               f"place for (shapes {sorted({shape for shape, _ in left})}): it was saved from "
                               "another architecture")


def _float_arrays(group) -> list:
    """Every floating-point dataset under ``group`` (Keras 3 also stores integer RNG states)."""
    arrays = []
    group.visititems(lambda name, item: arrays.append(item[()])
                     if isinstance(item, h5py.Dataset) and np.issubdtype(item.dtype, np.floating) else None)
    return arrays


def _digest(array) -> tuple:
    # float32 as the model holds it: Keras casts what it loads to the variable's dtype.
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array.shape, hashlib.sha256(array.tobytes()).hexdigest()


@contextlib.contextmanager
def _named(path: Path, suffix: str):
    """``path``, or a link to it whose name ends in ``suffix`` (and only that Keras suffix)."""
    fits = path.name.endswith(suffix) and (suffix != ".h5" or not path.name.endswith(".weights.h5"))
    if fits:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="keras_xai_weights_") as folder:
        usable = Path(folder) / f"weights{suffix}"
        try:
            usable.symlink_to(path.resolve())
        except OSError:  # no symlinks here (e.g. Windows without the privilege)
            shutil.copyfile(path, usable)
        yield usable
