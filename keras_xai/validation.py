"""Checks of user input that turn mistakes into clear errors before anything is computed."""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

#: Compute dtypes the engine supports.
COMPUTE_DTYPES = (tf.float32, tf.float64)


def compute_dtype(dtype) -> tf.DType:
    """``tf.float32`` or ``tf.float64`` from a name, NumPy or TF dtype."""
    try:
        resolved = tf.as_dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from error
    if resolved not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {resolved.name}")
    return resolved


def _shape_text(shape) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def check_batch(x, expected_shape: tuple, dtype: tf.DType, what: str = "x") -> np.ndarray:
    """Validate a batch against the shape ``(None, ...)`` and return it as a NumPy array of ``dtype``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric floating-point data.
    ValueError
        On a wrong rank or shape, an empty batch, or NaN/Inf values.
    """
    if isinstance(x, tf.Tensor):
        x = x.numpy()
    try:
        array = np.asarray(x)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{what} must be an array of numbers: {error}") from error
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{what} has dtype {array.dtype}; attributions need floating-point input "
            f"(e.g. {what}.astype('float32'))"
        )
    if array.ndim != len(expected_shape):
        hint = f"; for a single sample use {what}[None]" if array.ndim == len(expected_shape) - 1 else ""
        raise ValueError(
            f"{what} has shape {array.shape} (rank {array.ndim}) but the model expects "
            f"{_shape_text(expected_shape)} (rank {len(expected_shape)}){hint}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (shape {array.shape}); give at least one sample")
    for axis, (got, expected) in enumerate(zip(array.shape[1:], expected_shape[1:]), start=1):
        if expected is not None and got != expected:
            raise ValueError(
                f"{what} has shape {array.shape} but the model expects {_shape_text(expected_shape)} "
                f"(axis {axis} is {got}, expected {expected})"
            )
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{what} contains {array.size - int(finite.sum())} NaN or Inf value(s); "
                         "attributions need finite input")
    return array.astype(dtype.as_numpy_dtype, copy=False)


def neuron_indices(neuron_selection, batch_size: int, n_outputs: int) -> np.ndarray:
    """The output unit to explain per sample, as int32 (-1 = the maximally activated unit).

    ``neuron_selection`` is "max_activation" (or None), one int for all samples, or one int per sample.
    """
    if neuron_selection is None or (isinstance(neuron_selection, str) and neuron_selection == "max_activation"):
        return np.full(batch_size, -1, dtype=np.int32)
    if isinstance(neuron_selection, str):
        raise ValueError(f"neuron_selection must be 'max_activation', an int or one int per sample, "
                         f"got {neuron_selection!r}")
    if isinstance(neuron_selection, (bool, np.bool_)):
        raise TypeError("neuron_selection must be an int (or 'max_activation'), got a bool")
    if isinstance(neuron_selection, numbers.Integral):
        indices = np.full(batch_size, int(neuron_selection), dtype=np.int64)
    else:
        indices = np.asarray(neuron_selection)
        if indices.dtype == bool or not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"neuron_selection must hold integers, got dtype {indices.dtype}")
        if indices.ndim == 0:
            indices = np.full(batch_size, int(indices), dtype=np.int64)
        if indices.shape != (batch_size,):
            raise ValueError(f"neuron_selection must be one int or one int per sample "
                             f"(shape ({batch_size},)), got shape {indices.shape}")
    bad = (indices < 0) | (indices >= n_outputs)
    if bad.any():
        raise ValueError(f"neuron_selection {indices[bad][0]} is out of range: the model has "
                         f"{n_outputs} output units (valid indices 0..{n_outputs - 1})")
    return indices.astype(np.int32)


def layer_name(layer, known, model_name: str) -> str:
    """The name of ``layer`` (a name or a Keras layer), checked against the ``known`` layer names."""
    name = getattr(layer, "name", layer)
    if name not in known:
        raise ValueError(f"model {model_name!r} has no layer {name!r}; layers: {', '.join(known)}")
    return name


def injections(relevances, known, model_name: str) -> list:
    """``[(layer name, vectors), ...]`` of a ``propagate_from_layers`` dict, layer names checked."""
    if not isinstance(relevances, dict) or not relevances:
        raise ValueError("relevances must be a non-empty dict: layer name -> vectors to inject there")
    named = [(layer_name(layer, known, model_name), relevance) for layer, relevance in relevances.items()]
    names = [name for name, _ in named]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"layer(s) {twice} given twice in relevances")
    return named


def check_injected(relevance, shape: tuple, dtype: tf.DType, batch_size: int) -> tuple:
    """A batch of vectors to inject at a layer with output shape ``shape`` (``propagate_from``).

    Accepts vectors shaped like the layer's output or flattened to ``(rows, units)``: one per sample
    (``rows == batch_size``) or ``k`` per sample (``rows == k * batch_size``, those of sample ``i`` in
    rows ``i*k .. i*k + k - 1``).

    Returns
    -------
    (relevance, k)
    """
    relevance = np.asarray(relevance.numpy() if hasattr(relevance, "numpy") else relevance)
    if relevance.ndim == 2 and len(shape) > 2 and relevance.shape[1] == int(np.prod(shape[1:])):
        relevance = relevance.reshape(len(relevance), *shape[1:])
    relevance = check_batch(relevance, shape, dtype, "relevance")
    if len(relevance) % batch_size:
        raise ValueError(f"relevance has {len(relevance)} vectors but x has {batch_size} samples: give one "
                         f"vector per sample or the same number k per sample ({batch_size} * k rows, "
                         "sample-major)")
    return relevance, len(relevance) // batch_size


def output_units(output_shape: tuple, model_name: str) -> int:
    """How many output units a model has (the range of ``neuron_selection``)."""
    if any(d is None for d in output_shape[1:]):
        raise ValueError(f"model {model_name!r} has an output of unknown size {tuple(output_shape)}; "
                         "give the model a fully defined input shape")
    return int(np.prod(output_shape[1:]))
