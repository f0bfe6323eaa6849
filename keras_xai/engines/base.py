"""The caller-side analyzer of the worker engines: the native engine's API on top of a worker.

:class:`WorkerAnalyzer` validates input exactly like the native analyzer, hands the model to the
engine's worker as a saved ``.h5`` file (saved once per model state and engine, deleted when no
analyzer uses it any more; saved again when a call finds the weights changed, see
:class:`WeightWatch`) and the arrays as ``.npy`` files, and returns NumPy arrays.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import uuid
import warnings
import weakref

import numpy as np
import tensorflow as tf

from keras_xai import graph as keras_graph
from keras_xai.analyzer import NativeAnalyzer
from keras_xai.canonize import ends_in_softmax
from keras_xai.engines.worker import Worker, get_worker, remove_file
from keras_xai.validation import (
    check_batch, check_injected, compute_dtype, injections, layer_name, neuron_indices, output_units,
)


#: Where the reference engines run: iNNvestigate 2.1.2 and deeplift 0.6.13 need TF 1-style graph mode,
#: which stops at TensorFlow 2.14 / Keras 2 (no wheels for Python 3.12+).
REPRODUCTION_STACK = ("Python 3.9-3.11, TensorFlow 2.14 and Keras 2: pip install -c constraints.txt "
                      "'keras-xai[engines]' (the project's `make test` venv)")


class EngineUnavailableError(ImportError):
    """A reference engine's package cannot run in this environment."""


def check_reference_engine(engine: str, model) -> None:
    """Raise a clear error unless ``engine`` can explain ``model`` here (each reference engine runs
    the package of its own name).

    Raises
    ------
    EngineUnavailableError
        ``package`` is not installed, or TensorFlow is newer than 2.14.
    TypeError, ValueError
        ``model`` is not a Keras model, or is a Keras 3 model (the packages read Keras 2 files).
    """
    package = engine
    installed = importlib.util.find_spec(package) is not None
    tf_version = tuple(int(part) for part in tf.__version__.split(".")[:2])
    if not installed or tf_version >= (2, 15):
        found = f"cannot run on TensorFlow {tf.__version__}" if installed else "is not installed"
        raise EngineUnavailableError(
            f"engine={engine!r} needs the package {package!r}, which {found} here; it runs on the "
            f"reproduction stack only ({REPRODUCTION_STACK}). engine='native' offers every method "
            "on this stack")
    keras_graph.check_model(model)
    if keras_graph.keras_major(model) >= 3:
        raise ValueError(f"model {model.name!r} is a Keras 3 model; engine={engine!r} ({package}) reads "
                         f"Keras 2 models only ({REPRODUCTION_STACK}); use engine='native'")


class WeightWatch:
    """Notices every change of a model's weights between calls, exactly and cheaply.

    The workers hold a copy of the model, while the native engine reads the weights at every call
    (e.g. ``sanity.experiments.cascading_randomization`` randomizes a model with ``set_weights``
    and reuses its analyzers). A bitwise comparison of every variable with a snapshot, in one
    ``tf.function``, tells whether the copy is stale. Measured on this machine (2 shared cores):
    0.009 s per call on the appendix-D net (8.6M parameters; its steady-state innvestigate call on 5
    images takes 0.07 s), 0.05-0.07 s on VGG-16 (138M), where hashing VGG-16's weights
    (``get_weights`` + BLAKE2b) took 1.6-1.9 s. The price is one snapshot of the weights in memory
    (553 MB for VGG-16; made in 0.4 s). A change costs the worker a rebuild of the analyzer
    (about 3 s on the appendix-D net with iNNvestigate).

    :attr:`version` grows by one at every change found by :meth:`check`.
    """

    def __init__(self, model):
        self.token = uuid.uuid4().hex  # names the model's saved files (see _ModelFiles)
        self.version = 0
        self._take_snapshot(model)

    def _take_snapshot(self, model):
        self._variables = list(model.weights)
        self._ids = [id(v) for v in self._variables]
        self._snapshot = [tf.Variable(v.read_value(), trainable=False) for v in self._variables]
        self._unchanged = tf.function(self._compare, autograph=False)

    @staticmethod
    def _bits(value):
        # Bitwise: NaN == NaN and -0 != +0 (tf.equal on floats says the opposite).
        if value.dtype.is_floating and value.dtype.size in _SAME_SIZE_INTS:
            return tf.bitcast(value, _SAME_SIZE_INTS[value.dtype.size])
        return value

    def _compare(self):
        same = [tf.reduce_all(tf.equal(self._bits(v), self._bits(s))) for v, s in zip(self._variables, self._snapshot)]
        return tf.reduce_all(tf.stack(same)) if same else tf.constant(True)

    def check(self, model) -> int:
        """The model's weight version (a new one if the weights changed since the last check)."""
        if [id(v) for v in model.weights] != self._ids:  # variables replaced (e.g. a layer rebuilt)
            self._take_snapshot(model)
            self.version += 1
        elif not bool(self._unchanged()):
            for variable, copy in zip(self._variables, self._snapshot):
                copy.assign(variable)
            self.version += 1
        return self.version


_SAME_SIZE_INTS = {2: tf.int16, 4: tf.int32, 8: tf.int64}
_WATCHES = weakref.WeakKeyDictionary()  # model -> WeightWatch, shared by the model's analyzers
_WATCHES_LOCK = threading.Lock()


def weight_watch(model) -> WeightWatch:
    """The :class:`WeightWatch` of ``model`` (one per model object)."""
    with _WATCHES_LOCK:
        watch = _WATCHES.get(model)
        if watch is None:
            watch = _WATCHES[model] = WeightWatch(model)
        return watch


@contextlib.contextmanager
def _quiet_tensorflow_logger():
    """Silence the "tensorflow" logger: ``model.save`` of a compiled model warns "Compiled the loaded
    model, but the compiled metrics have yet to be built" (keras' try_build_compiled_arguments),
    which says nothing about the copy handed to a worker."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _ModelFiles:
    """Saved copies of models in one worker's folder, shared by analyzers and reference-counted."""

    def __init__(self):
        # Reentrant: model.save can trigger a garbage collection that finalizes a dead analyzer,
        # whose release then runs inside acquire, on the same thread (with a plain Lock: deadlock).
        self._lock = threading.RLock()
        self._files = {}  # (worker folder, variant, model token, weight version) -> [path, users]

    def acquire(self, worker: Worker, model, key: tuple) -> str:
        """The path of ``model`` saved for ``key`` in ``worker``'s folder (saved on first use)."""
        key = (worker.directory,) + tuple(key)
        with self._lock:
            entry = self._files.get(key)
            if entry is None:
                path = worker.new_path(".h5")
                with warnings.catch_warnings(), _quiet_tensorflow_logger():
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
        Single input, single output, no softmax at the end. Every call uses the model's current
        weights, as the native engine does: a call that finds them changed (see
        :class:`WeightWatch`) hands the new model to the worker, which rebuilds the analyzer.
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

    def __init__(self, method, model, timeout: float | None = None, dtype="float32", **params):
        check_reference_engine(self.engine, model)
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
        self._input_name = keras_graph.input_names(model)[0]
        self._output_shapes = {self._input_name: self.input_shape}
        for layer in model.layers:
            if layer.name != self._input_name:
                self._output_shapes[layer.name] = tuple(layer.output.shape)
        self._worker = get_worker(self.engine, self.worker_module)
        self._watch = weight_watch(model)
        self._finalizer = None
        self._use_weights(self._watch.version)

    # --- hooks for the engines ---------------------------------------------------------------

    def _check_model(self, model) -> None:
        if ends_in_softmax(model):
            raise ValueError(f"model {model.name!r} ends in a softmax; {self.name} explains logits: "
                             "use keras_xai.model_wo_softmax(model)")

    def _validate_params(self, params: dict) -> None:
        """Reject parameters the method does not have (before any worker is started)."""

    def _model_to_save(self, model):
        return model

    def _spec_options(self) -> dict:
        return dict(self.options)

    def _method_params(self) -> dict:
        return {k: v for k, v in self.params.items() if k not in self.engine_options}

    # --- helpers -------------------------------------------------------------------------------

    def _use_weights(self, version: int) -> None:
        """Point this analyzer at a worker-side copy of the model with weight ``version`` (a new
        analyzer id, so the worker builds a new context); release the previous copy."""
        previous = self._finalizer
        self._version = version
        self._id = uuid.uuid4().hex
        self._model_path = MODEL_FILES.acquire(self._worker, self._model_to_save(self.model),
                                               (self.model_variant, self._watch.token, version))
        self._finalizer = weakref.finalize(self, _release, self._worker, self._id, self._model_path)
        self._finalizer.atexit = False
        if previous is not None:
            previous()

    def _sync_weights(self) -> None:
        version = self._watch.check(self.model)
        if version != self._version:
            self._use_weights(version)

    def _spec(self) -> dict:
        return {"id": self._id, "model": self._model_path, "name": self.name, "params": self._method_params(),
                "options": self._spec_options()}

    def _extra_arrays(self, x: np.ndarray) -> dict:
        """Arrays an engine sends with every request besides ``x`` (e.g. DeepLIFT's reference)."""
        return {}

    def _call(self, request: dict, arrays: dict):
        self._sync_weights()
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
        return self._relevances(x, neuron_selection)

    def _relevances(self, x, neuron_selection, **fields) -> dict:
        """:meth:`relevances` with extra ``fields`` in the worker request."""
        x = self._input(x)
        selection = neuron_indices(neuron_selection, len(x), self.n_outputs)
        reply, arrays = self._call(dict(fields, op="analyze", what="all"), {"x": x, "selection": selection})
        return self._named(reply, arrays)

    def propagate_from(self, x, layer, relevance) -> dict:
        return self._propagate_from(x, layer, relevance)

    def _propagate_from(self, x, layer, relevance, **fields) -> dict:
        """:meth:`propagate_from` with extra ``fields`` in the worker request."""
        x = self._input(x)
        name = layer_name(layer, self.layer_names, self.model.name)
        if name == self._input_name:
            raise ValueError(f"cannot inject at the model input {name!r}; choose a layer above it")
        relevance, per_sample = check_injected(relevance, self._output_shapes[name], self.dtype, len(x))
        request = dict(fields, op="inject", layer=name)
        if per_sample == 1:
            return self._named(*self._call(request, {"x": x, "relevance": relevance}))
        if not self._has_per_sample_parameter(len(x)):
            # The worker takes one vector per sample: repeat each sample for its vectors.
            return self._named(*self._call(request, {"x": np.repeat(x, per_sample, axis=0), "relevance": relevance}))
        # A reference given per sample fits only the batch itself: one request per vector slot.
        slots = [self._named(*self._call(request, {"x": x, "relevance": relevance[j::per_sample]}))
                 for j in range(per_sample)]
        return {key: np.stack([slot[key] for slot in slots], axis=1).reshape(-1, *slots[0][key].shape[1:])
                for key in slots[0]}

    def _has_per_sample_parameter(self, batch_size: int) -> bool:
        """Whether a parameter is an array with one entry per sample (a per-sample reference input)."""
        return batch_size > 1 and any(
            np.ndim(value) == len(self.input_shape) and np.shape(value)[0] == batch_size
            for value in self.params.values() if isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) > 0)

    def propagate_from_layers(self, x, relevances: dict, copy: bool = True) -> dict:
        """:meth:`propagate_from` at every layer of ``relevances`` (layer -> vectors), one request each
        (the worker runs a forward pass per request, on each sample repeated for its vectors). The
        arrays are always this process's own (``copy`` is accepted for the native engine's API)."""
        return {name: self.propagate_from(x, name, relevance)
                for name, relevance in injections(relevances, self.layer_names, self.model.name)}

    def prepare_propagate_from_layers(self, x, relevances: dict) -> None:
        """Nothing to do ahead: the worker builds its graphs on the first request (they depend on the
        weights it receives with that request)."""
        injections(relevances, self.layer_names, self.model.name)  # the same errors as the call

    propagate_from.__doc__ = NativeAnalyzer.propagate_from.__doc__

    @property
    def worker(self) -> Worker:
        """The engine's worker process handle (shared by every analyzer of the engine)."""
        return self._worker
