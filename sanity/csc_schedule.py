"""How the CSC experiment (:mod:`sanity.csc_experiment`) divides its work: images per call
(:func:`csc_chunk_size`) and injection layers per call (:func:`injection_groups`) so that the propagated
vectors of one call fit :data:`INJECTION_GROUP_BYTES`, from the sizes of the model's layers known before
running (:func:`layer_names`, :func:`sample_shape`); and the threads that compute its statistics.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tensorflow import keras

from keras_xai import graph


#: Threads computing CSC statistics: one while a call propagates (a second one slowed the propagation
#: as much as it gained), all of them on the last call's results.
STATISTICS_THREADS = 2
#: Most bytes the propagated vectors of one call may take (float32): injections are grouped under it.
INJECTION_GROUP_BYTES = 1 << 30


def csc_chunk_size(model: keras.Model, injection_layers: Sequence[str], n_vectors: int = 5, most: int = 16) -> int:
    """Images per CSC call: as many as keep the results of every injection (``n_vectors`` per image at
    every layer below it, float32) within :data:`INJECTION_GROUP_BYTES`, from 1 to ``most``; ``most``
    // 4 when layer sizes are only known at run time. The appendix-D net takes 16 (50 MNIST images, the
    14 CSC methods but PatternNet's: 28-33 s, 32-33 s with 4 per call), VGG-16 one image per call."""
    layers = layer_names(model)
    sizes = [_known_size(model, name) for name in layers]
    per_row = [_bytes_per_row(sizes, layers, name) for name in injection_layers]
    if None in per_row:
        return max(1, most // 4)
    return max(1, min(most, INJECTION_GROUP_BYTES // max(1, n_vectors * sum(per_row))))


def _bytes_per_row(sizes: list, layers: list, injection: str):
    """float32 bytes of one injected vector's results (every layer at or below ``injection``); None
    if a size is only known at run time."""
    below = sizes[:layers.index(injection) + 1] if injection in layers else sizes
    return None if None in below else 4 * sum(below)


def layer_names(model: keras.Model) -> list:
    """Every layer's name, input names first (a Sequential model's InputLayer is not in model.layers)."""
    return list(dict.fromkeys([*graph.input_names(model), *(layer.name for layer in model.layers)]))


def injection_groups(model: keras.Model, layers: list, injection_layers: list, rows: int) -> list:
    """Injection layers in consecutive groups whose results (``rows`` vectors at every layer below
    each injection) fit :data:`INJECTION_GROUP_BYTES`: all of them for small nets, one at a time for
    VGG-16-sized feature maps."""
    sizes = [_known_size(model, name) for name in layers]
    groups, used = [], 0
    for name in injection_layers:
        per_row = _bytes_per_row(sizes, layers, name)
        # A layer whose size is only known at run time: its injection goes alone.
        needed = rows * per_row if per_row is not None else INJECTION_GROUP_BYTES + 1
        if groups and used + needed <= INJECTION_GROUP_BYTES:
            groups[-1].append(name)
            used += needed
        else:
            groups.append([name])
            used = needed
    return groups


def _known_size(model: keras.Model, name: str):
    """Values per sample at a layer's output, None if not known before running (or a shared layer)."""
    try:
        shape = sample_shape(model, name)
    except ValueError:  # a layer applied several times has no single output shape
        return None
    return None if None in shape else int(np.prod(shape))


def sample_shape(model: keras.Model, name: str) -> tuple:
    """Output shape of one sample at layer (or input) ``name``: no batch dimension."""
    return graph.output_shape(model, name)[1:]
