"""The caller-side analyzer of the worker engines: the native engine's API on top of a worker.

:class:`WorkerAnalyzer` validates input exactly like the native analyzer, hands the model to the
engine's worker as a saved ``.h5`` file (saved once per model state and engine, deleted when no
analyzer uses it any more) and the arrays as ``.npy`` files, and returns NumPy arrays.
"""
from __future__ import annotations

import hashlib
import threading
import uuid
import warnings
import weakref

import numpy as np
from tensorflow import keras

from keras_xai.analyzer import NativeAnalyzer
from keras_xai.canonize import ends_in_softmax
from keras_xai.engines.worker import Worker, get_worker, remove_file
from keras_xai.validation import check_batch, check_injected, compute_dtype, layer_name, neuron_indices, output_units


class _ModelFiles:
    """Saved copies of models in one worker's folder, shared by analyzers and reference-counted."""

    def __init__(self):
        self._lock = threading.Lock()
        self._files = {}  # (worker folder, fingerprint) -> [path, users]

    @staticmethod
    def fingerprint(model: keras.Model) -> str:
        """Digest of the architecture and the current weights (a changed weight gives a new file)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(model.to_json().encode())
        for weight in model.get_weights():
            digest.update(str(weight.shape).encode())
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()

    def acquire(self, worker: Worker, model: keras.Model, variant: str = "") -> str:
        key = (worker.directory, variant + self.fingerprint(model))
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                path = worker.new_path(".h5")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "HDF5 is a legacy format": it is what both packages read
                    model.save(path, save_format="h5", include_optimizer=False)
                entry = self._files[key] = [path, 0]
            entry[1] += 1
            return entry[0]

    def release(self, path: str) -> None:
        with self._lock:
            for key, entry in list(self._files.items()):
                if entry[0] == path:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self._files[key]
                        remove_file(path)
                    return


MODEL_FILES = _ModelFiles()


def _release(worker: Worker, analyzer_id: str, path: str) -> None:
    worker.release(analyzer_id)
    MODEL_FILES.release(path)


class WorkerAnalyzer:
    """Attributions computed by a package in a worker process, with the native engine's API.

    Subclasses set :attr:`engine` and :attr:`worker_module` and override the hooks they need.

    Parameters
    ----------
    method : keras_xai.analyzers.Method
        The registered method (its name is the package's analyzer name).
    model : keras.Model
        Single input, single output, no softmax at the end. Its architecture and weights are
        captured when the analyzer is created: create a new analyzer after changing the weights.
    timeout : float, optional
        Seconds one call may take before the worker counts as hung (default: 3600, or
        ``$KERAS_XAI_WORKER_TIMEOUT``).
    dtype : "float32"
        Both packages compute in float32.
    **params
        The method's parameters, passed on to the package.
    """

    engine = ""
    worker_module = ""
    model_variant = ""
    #: Options of the engine itself (name -> default), accepted besides the method's parameters.
    engine_options: dict = {}

    def __init__(self, method, model: keras.Model, timeout: float | None = None, dtype="float32", **params):
        if not isinstance(model, keras.Model):
            raise TypeError(f"expected a keras.Model, got {type(model).__name__}")
        if compute_dtype(dtype).name != "float32":
            raise ValueError(f"the {self.engine} engine computes in float32; got dtype={dtype!r} "
                             "(use engine='native' for float64)")
        self.name = method.name
        self.model = model
        self.params = dict(params)
        self.options = {key: self.params.get(key, default) for key, default in self.engine_options.items()}
        self.timeout = timeout
        self.dtype = compute_dtype("float32")
        self._check_model(model)
        self._validate_params(self.params)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
                             "outputs; the engines explain single-input, single-output models")
        self.n_outputs = output_units(tuple(model.outputs[0].shape), model.name)
        self.input_shape = tuple(model.inputs[0].shape)
        self._input_name = model.inputs[0]._keras_history.layer.name
        self._output_shapes = {self._input_name: self.input_shape}
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                self._output_shapes[layer.name] = tuple(layer.output.shape)
        self._worker = get_worker(self.engine, self.worker_module)
        self._id = uuid.uuid4().hex
        self._model_path = self._save_model(model)
        self._finalizer = weakref.finalize(self, _release, self._worker, self._id, self._model_path)
        self._finalizer.atexit = False

    # --- hooks for the engines ---------------------------------------------------------------

    def _check_model(self, model: keras.Model) -> None:
        if ends_in_softmax(model):
            raise ValueError(f"model {model.name!r} ends in a softmax; {self.name} explains logits: "
                             "use keras_xai.model_wo_softmax(model)")

    def _validate_params(self, params: dict) -> None:
        """Reject parameters the method does not have (before any worker is started)."""

    def _model_to_save(self, model: keras.Model) -> keras.Model:
        return model

    def _spec_options(self) -> dict:
        return dict(self.options)

    def _method_params(self) -> dict:
        return {k: v for k, v in self.params.items() if k not in self.engine_options}

    # --- helpers -------------------------------------------------------------------------------

    def _save_model(self, model):
        return MODEL_FILES.acquire(self._worker, self._model_to_save(model), self.model_variant)

    def _spec(self) -> dict:
        return {"id": self._id, "model": self._model_path, "name": self.name, "params": self._method_params(),
                "options": self._spec_options()}

    def _extra_arrays(self, x: np.ndarray) -> dict:
        """Arrays an engine sends with every request besides ``x`` (e.g. DeepLIFT's reference)."""
        return {}

    def _call(self, request: dict, arrays: dict):
        arrays = dict(arrays, **self._extra_arrays(arrays["x"]))
        return self._worker.call(dict(request, spec=self._spec()), arrays, timeout=self.timeout)

    def _input(self, x) -> np.ndarray:
        return check_batch(x, self.input_shape, self.dtype, "x")

    @staticmethod
    def _named(reply: dict, arrays: dict) -> dict:
        return {name: arrays[f"r{i}"] for i, name in enumerate(reply["names"])}

    def __repr__(self):
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return (f"<{type(self).__name__} {self.name!r} on model {self.model.name!r}{params}, "
                f"engine={self.engine!r}>")

    # --- public API ----------------------------------------------------------------------------

    @property
    def layer_names(self) -> list:
        """Names accepted by :meth:`propagate_from` (the input and every layer), forward order."""
        return list(self._output_shapes)

    def analyze(self, x, neuron_selection="max_activation") -> np.ndarray:
        x = self._input(x)
        selection = neuron_indices(neuron_selection, len(x), self.n_outputs)
        _, arrays = self._call({"op": "analyze", "what": "input"}, {"x": x, "selection": selection})
        return arrays["analysis"]

    analyze.__doc__ = NativeAnalyzer.analyze.__doc__

    def relevances(self, x, neuron_selection="max_activation") -> dict:
        """The back-propagated quantity at the output of every layer (layer name -> array).

        The input's entry equals :meth:`analyze`. Layers the backward pass does not reach are zero.
        """
        x = self._input(x)
        selection = neuron_indices(neuron_selection, len(x), self.n_outputs)
        reply, arrays = self._call({"op": "analyze", "what": "all"}, {"x": x, "selection": selection})
        return self._named(reply, arrays)

    def propagate_from(self, x, layer, relevance) -> dict:
        x = self._input(x)
        name = layer_name(layer, self.layer_names, self.model.name)
        if name == self._input_name:
            raise ValueError(f"cannot inject at the model input {name!r}; choose a layer above it")
        relevance = check_injected(relevance, self._output_shapes[name], self.dtype, len(x))
        reply, arrays = self._call({"op": "inject", "layer": name}, {"x": x, "relevance": relevance})
        return self._named(reply, arrays)

    propagate_from.__doc__ = NativeAnalyzer.propagate_from.__doc__

    @property
    def worker(self) -> Worker:
        """The engine's worker process handle (shared by every analyzer of the engine)."""
        return self._worker
