"""The classifier's hidden states, computed once per (weights, images) and cached on disk.

Every output-layer experiment only needs the last hidden state ``h`` of ``lstm2``: a low-rank variant
of the output layer is then the matrix product ``h W_k^T + b`` (thesis eq. 3.1) instead of a new pass
through the LSTM. The cache file name holds a hash of the weights and of the images, so a retrained
model or another subset never reads stale states.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tensorflow import keras

from architectures import cache as weight_cache
from architectures.cache import atomic_write_bytes
from keras_xai.graph import with_outputs

GATES = ("i", "f", "c", "o")  # Keras packs the gate blocks in this order along the last axis
GATE_NAMES = {"i": "input gate W_i", "f": "forget gate W_f", "c": "cell candidate W_g (Keras: c)",
              "o": "output gate W_o"}
THESIS_GATE = {"i": "W_i", "f": "W_f", "c": "W_g", "o": "W_o"}
LSTM_LAYERS = ("lstm1", "lstm2")
OUTPUT_LAYER = "logits"


@dataclass
class OutputLayer:
    """``y = h @ kernel + bias``; ``kernel`` is the thesis' W^T (hidden x classes)."""

    kernel: np.ndarray
    bias: np.ndarray

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        return np.asarray(hidden, np.float64) @ self.kernel + self.bias


def output_layer(model: keras.Model) -> OutputLayer:
    kernel, bias = model.get_layer(OUTPUT_LAYER).get_weights()
    return OutputLayer(kernel.astype(np.float64), bias.astype(np.float64))


@dataclass
class HiddenStates:
    """Final hidden states ``h`` of ``lstm2`` and the model's logits for a training and a test set."""

    hidden_train: np.ndarray  # float32 (n_train, Z)
    hidden_test: np.ndarray  # float32 (n_test, Z)
    logits_train: np.ndarray  # float32 (n_train, K), computed by Keras
    logits_test: np.ndarray
    labels_train: np.ndarray  # int64
    labels_test: np.ndarray
    train_index: np.ndarray  # position of each training row in the full training set
    test_index: np.ndarray

    @property
    def predictions_test(self) -> np.ndarray:
        return np.argmax(self.logits_test, axis=1)

    @property
    def predictions_train(self) -> np.ndarray:
        return np.argmax(self.logits_train, axis=1)


def weights_fingerprint(model: keras.Model) -> str:
    """SHA-256 (16 hex digits) of every weight array, in layer order."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(str(weight.shape).encode())
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def _array_fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    return weight_cache.home() / "lstm_svd" / "states"


def hidden_model(model: keras.Model) -> keras.Model:
    """A model returning ``(h, logits)``: lstm2's last hidden state and the logits."""
    return with_outputs(model, [model.get_layer(LSTM_LAYERS[-1]).output, model.get_layer(OUTPUT_LAYER).output],
                        name=f"{model.name}_hidden")


def compute_hidden_states(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                          y_test: np.ndarray, train_index: np.ndarray | None = None,
                          test_index: np.ndarray | None = None, batch_size: int = 1000) -> HiddenStates:
    """One forward pass over both sets (no cache)."""
    both = hidden_model(model)
    h_train, logits_train = both.predict(x_train, batch_size=batch_size, verbose=0)
    h_test, logits_test = both.predict(x_test, batch_size=batch_size, verbose=0)
    return HiddenStates(h_train, h_test, logits_train, logits_test, np.asarray(y_train, np.int64),
                        np.asarray(y_test, np.int64),
                        np.arange(len(x_train)) if train_index is None else np.asarray(train_index),
                        np.arange(len(x_test)) if test_index is None else np.asarray(test_index))


def hidden_states(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, train_index: np.ndarray | None = None, test_index: np.ndarray | None = None,
                  cache_dir: str | Path | None = None, log=print) -> HiddenStates:
    """The hidden states, from ``cache_dir`` (default ``$KERAS_XAI_HOME/lstm_svd/states``) when present.

    The file is keyed by the weights and the exact input arrays and written atomically.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = f"{weights_fingerprint(model)}-{_array_fingerprint(x_train, y_train, x_test, y_test)}"
    path = folder / f"hidden_states-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return HiddenStates(**{f.name: stored[f.name] for f in fields(HiddenStates)})
        except Exception as error:  # damaged file: recompute rather than fail
            log(f"hidden-state cache {path} is unreadable ({type(error).__name__}: {error}); recomputing")
    states = compute_hidden_states(model, x_train, y_train, x_test, y_test, train_index, test_index)
    buffer = io.BytesIO()
    np.savez(buffer, **{f.name: getattr(states, f.name) for f in fields(HiddenStates)})
    atomic_write_bytes(path, buffer.getvalue())
    return states


# ----------------------------------------------------------------------------------------- LSTM gates
def gate_block(matrix: np.ndarray, gate: str) -> np.ndarray:
    """The columns of one gate in a Keras LSTM kernel/recurrent kernel (gates packed i, f, c, o)."""
    units = matrix.shape[-1] // 4
    g = GATES.index(gate)
    return matrix[..., g * units:(g + 1) * units]


def with_gate_block(matrix: np.ndarray, gate: str, block: np.ndarray) -> np.ndarray:
    """A copy of ``matrix`` whose ``gate`` columns are replaced by ``block``."""
    units = matrix.shape[-1] // 4
    g = GATES.index(gate)
    replaced = np.array(matrix, copy=True)
    replaced[..., g * units:(g + 1) * units] = block
    return replaced


def lstm_matrix_index(kind: str) -> int:
    """Position of ``kind`` in ``LSTM.get_weights()`` = [kernel, recurrent_kernel, bias]."""
    order = {"input": 0, "recurrent": 1}
    if kind not in order:
        raise ValueError(f"unknown LSTM matrix {kind!r}; choose 'input' (kernel) or 'recurrent' (recurrent_kernel)")
    return order[kind]
