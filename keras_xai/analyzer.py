"""``create_analyzer``, the one entry point for every method and engine, and the native analyzer it
returns by default: the user-facing object around the engine.

The analyzer validates input, chooses the output unit(s) to explain, runs the compiled passes (in
chunks for SmoothGrad / Integrated Gradients), and returns NumPy arrays.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Callable

import numpy as np

from keras_xai.analyzers import Method, Recipe, get_method
from keras_xai.canonize import (
    CanonicalModel, UnsupportedLayerError, canonicalize, check_spatial_sizes, ends_in_softmax,
)
from keras_xai.engine import Engine
from keras_xai.graph import read_model
from keras_xai.kinds import Kind
from keras_xai.rules import GradientRule
from keras_xai.validation import (
    check_batch, check_injected, compute_dtype, injections, neuron_indices, output_units,
)

#: Bytes the layer outputs of one compiled call may take when a method averages over augmented
#: copies of the batch (SmoothGrad, Integrated Gradients): the copies go in as few calls as fit.
#: Larger calls are faster (appendix-D net, 64 images x 64 steps: 7.2 s in calls of 256 rows, 6.7 s
#: in calls of 1024); 2 GiB is ~1300 rows of that net, ~35 of VGG-16 at 224 x 224.
AUGMENTED_CALL_BYTES = 2 << 30
#: Rows per call instead when the layer sizes depend on the input (e.g. inputs of shape (None, None, 3)).
ROWS_PER_AUGMENTED_CALL_UNKNOWN_SIZE = 256
#: What the recipe's ``postprocess`` does to the gradient at the input.
POSTPROCESS_FUNCTIONS = {"abs": np.abs, "square": np.square}


def _blocks(copies, group: int):
    """``(concatenated block, number of copies in it)`` of ``group`` copies at a time. The next block
    is made (noise drawn, copies joined) in a thread while the caller computes on the current one:
    SmoothGrad 8% faster (appendix-D net, batch 64), which keeps it as fast as iNNvestigate."""
    def make():
        block = list(islice(copies, group))
        return (np.concatenate(block), len(block)) if block else None

    with ThreadPoolExecutor(max_workers=1) as maker:
        upcoming = maker.submit(make)
        while True:
            current = upcoming.result()
            if current is None:
                return
            upcoming = maker.submit(make)
            yield current


def assign_rules(model: CanonicalModel, recipe: Recipe, method: str) -> list:
    """The rule for every step: the first matching ``(selector, rule)`` of the recipe for linear and
    activation steps, the gradient for steps that only move values.

    Raises
    ------
    UnsupportedLayerError
        If no rule of the method applies to a step, or the method is undefined for an activation.
    """
    rules = [None]
    for step in model.steps[1:]:
        if step.kind.is_structural:
            rules.append(GradientRule())
            continue
        if step.kind is Kind.ACTIVATION and recipe.activations is not None \
                and step.operation.name not in recipe.activations:
            raise UnsupportedLayerError(
                f"layer {step.describe()} uses the {step.operation.name!r} activation; {method} is only "
                f"defined for {' and '.join(recipe.activations)} activations"
            )
        if step.kind is Kind.LSTM and recipe.activations is not None:
            raise UnsupportedLayerError(
                f"layer {step.describe()} gates with sigmoids and tanh; {method} is only defined for "
                f"{' and '.join(recipe.activations)} activations")
        chosen = next((rule for accepts, rule in recipe.rules if accepts(step)), None)
        if chosen is None:
            hint = (": LSTM layers are explained by the gradient methods (gradient, input_t_gradient, "
                    "integrated_gradients, smoothgrad), by lrp.z, lrp.epsilon and their _IB variants and by "
                    "deep_lift.rescale"
                    if step.kind is Kind.LSTM else "")
            raise UnsupportedLayerError(f"layer {step.describe()} has no rule in {method}{hint}")
        reason = chosen.unsupported_reason(step)
        if reason is not None:
            raise UnsupportedLayerError(f"layer {step.describe()} cannot use {chosen!r} in {method}: {reason}")
        rules.append(chosen)
    return rules


class NativeAnalyzer:
    """Attributions for one Keras model with one method, computed by the native engine.

    Create it with :func:`keras_xai.create_analyzer`. The model is read, never modified; its
    weights are read at every call, so later weight changes are seen.

    Parameters
    ----------
    method : keras_xai.analyzers.Method
    model : keras.Model
        Single input, single output, no softmax at the end (see :func:`keras_xai.model_wo_softmax`).
    dtype : str or dtype
        "float32" (default) or "float64": the dtype of every intermediate.
    **params
        The method's parameters (see :func:`keras_xai.list_analyzers`).
    """

    engine = "native"

    def __init__(self, method: Method, model, dtype="float32", **params):
        self.name = method.name
        self.model = model
        self.params = dict(params)
        self.dtype = compute_dtype(dtype)
        self._recipe = method.recipe(**params)
        graph = read_model(model)
        if ends_in_softmax(model):
            raise ValueError(
                f"model {model.name!r} ends in a softmax ({graph.nodes[graph.output_index].name!r}); "
                f"{method.name} explains logits: use keras_xai.model_wo_softmax(model)"
            )
        self._model = canonicalize(graph, self.dtype, method.name)
        self._engine = Engine(self._model, assign_rules(self._model, self._recipe, method.name),
                              self._recipe.head, self.dtype, reference_pass=self._recipe.reference_pass)
        self.n_outputs = output_units(self._model.steps[self._model.output_index].output_shape, model.name)
        self.input_shape = self._model.steps[0].output_shape
        if self._recipe.augmentation is not None:
            self._recipe.augmentation.check(self.input_shape[1:])

    def __repr__(self):
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"<NativeAnalyzer {self.name!r} on model {self.model.name!r}{params}, dtype={self.dtype.name}>"

    @property
    def canonical_model(self):
        """The canonical model the engine runs (:mod:`keras_xai.canonize`): its steps, read-only."""
        return self._model

    @property
    def layer_names(self) -> list:
        """Names accepted by :meth:`propagate_from` (every layer with an output), forward order."""
        return list(self._model.layer_steps)

    # --- helpers --------------------------------------------------------------------------------

    def _input(self, x) -> np.ndarray:
        array = check_batch(x, self.input_shape, self.dtype, "x")
        if None in self.input_shape[1:3] and array.ndim == 4:
            check_spatial_sizes(self._model, array.shape[1:])
        return array

    def _selection(self, x, neuron_selection) -> np.ndarray:
        indices = neuron_indices(neuron_selection, len(x), self.n_outputs)
        if self._recipe.augmentation is not None and (indices < 0).any():
            # Wrappers explain the unit that is maximal for the clean input, not for each copy.
            maximal = np.argmax(self._engine.predict(x).numpy(), axis=1).astype(np.int32)
            indices = np.where(indices < 0, maximal, indices)
        return indices

    def _postprocessed(self, results, input_positions=(0,), copy: bool = True) -> list:
        """``results`` as NumPy, the input's entries (at ``input_positions``) postprocessed as the
        recipe asks; ``copy=False``: read-only views of the tensors' buffers where nothing changes them."""
        arrays = [r.numpy() if copy else np.asarray(r) for r in results]
        if self._recipe.postprocess is not None:
            for position in input_positions:
                arrays[position] = POSTPROCESS_FUNCTIONS[self._recipe.postprocess](arrays[position])
        return arrays

    def _run(self, compiled, x, *per_sample, input_positions=(0,), copy: bool = True) -> list:
        """``compiled(x, *per_sample)`` as NumPy, averaged over the augmentation if there is one.

        ``per_sample`` arrays have one row per sample of ``x`` or ``k`` rows per sample
        (sample-major); ``input_positions`` are the results that are the model input's entry;
        ``copy`` as for :meth:`_postprocessed`.
        """
        augmentation = self._recipe.augmentation
        if augmentation is None:
            return self._postprocessed(compiled(x, *per_sample), input_positions, copy)
        # Rows one copy of the batch puts through the pass: k per sample for k injected vectors, for
        # each injection.
        rows = max(len(x), sum(len(array) for array in per_sample))
        totals = None
        for block, count in self._copy_blocks(x, rows):
            repeated = [np.concatenate([array] * count) for array in per_sample]
            results = self._postprocessed(compiled(block, *repeated), input_positions)
            # Rows are block-major; a block has len(x) * k rows when k vectors per sample are injected.
            sums = [r.reshape(count, -1, *r.shape[1:]).sum(axis=0) for r in results]
            totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
        return [t / augmentation.count for t in totals]

    def _copy_blocks(self, x, rows: int):
        """The augmentation's copies of ``x`` as :func:`_blocks`, as many per compiled call as fit
        :meth:`_rows_per_augmented_call` when one copy puts ``rows`` rows through the pass."""
        return _blocks(self._recipe.augmentation.copies(x), max(1, self._rows_per_augmented_call() // rows))

    def _rows_per_augmented_call(self) -> int:
        """How many input rows fit :data:`AUGMENTED_CALL_BYTES` of layer outputs
        (:data:`ROWS_PER_AUGMENTED_CALL_UNKNOWN_SIZE` if a layer's size is only known at run time)."""
        shapes = [step.output_shape[1:] for step in self._model.steps]
        if any(d is None for shape in shapes for d in shape):
            return ROWS_PER_AUGMENTED_CALL_UNKNOWN_SIZE
        per_row = sum(int(np.prod(shape)) for shape in shapes)
        return max(1, AUGMENTED_CALL_BYTES // (per_row * self.dtype.size))

    def _finish_input(self, relevance, x) -> np.ndarray:
        if self._recipe.augmentation is not None:
            relevance = self._recipe.augmentation.finish_input(relevance, x)
        if self._recipe.times_input:
            relevance = x * relevance
        return relevance

    def _finish_input_rows(self, relevance, x, per_sample: int) -> np.ndarray:
        """:meth:`_finish_input` for ``per_sample`` rows per sample of ``x`` (sample-major): per
        vector slot, so that per-sample references keep their batch shape."""
        if per_sample == 1:
            return self._finish_input(relevance, x)
        slots = relevance.reshape(len(x), per_sample, *relevance.shape[1:])
        finished = [self._finish_input(np.ascontiguousarray(slots[:, j]), x) for j in range(per_sample)]
        return np.stack(finished, axis=1).reshape(relevance.shape)

    def _named(self, indices, values, x, per_sample: int = 1) -> dict:
        named = {}
        for index, value in zip(indices, values):
            named[self._model.steps[index].name] = \
                self._finish_input_rows(value, x, per_sample) if index == 0 else value
        for alias, index in self._model.layer_steps.items():
            if alias not in named and index in indices:
                named[alias] = named[self._model.steps[index].name]
        return named

    # --- public API -----------------------------------------------------------------------------

    def analyze(self, x, neuron_selection="max_activation") -> np.ndarray:
        """Attribution for the selected output unit, shaped like ``x``.

        Parameters
        ----------
        x : array of shape (batch, *input_shape), floating point
        neuron_selection : "max_activation", int, or array of one int per sample
            Which output unit to explain (flattened index); default: each sample's maximal unit.

        Returns
        -------
        np.ndarray of the analyzer's dtype, shape ``x.shape``.
        """
        x = self._input(x)
        selection = self._selection(x, neuron_selection)
        (relevance,) = self._run(lambda a, s: (self._engine.input_relevance(a, s),), x, selection)
        return self._finish_input(relevance, x)

    def relevances(self, x, neuron_selection="max_activation") -> dict:
        """The back-propagated quantity at the output of every layer.

        Relevance for LRP-type methods, the (modified) gradient for the gradient family; the model
        input's entry equals :meth:`analyze`. Keys are layer names (Dropout layers report the
        quantity at their input, which they pass through).
        """
        return self._relevances_on(self._engine, x, neuron_selection)

    def _relevances_on(self, engine, x, neuron_selection) -> dict:
        """:meth:`relevances` computed by ``engine`` (another engine over the same canonical model)."""
        x = self._input(x)
        selection = self._selection(x, neuron_selection)
        values = self._run(engine.relevances, x, selection)
        return self._named(engine.reported_steps(), values, x)

    def propagate_from(self, x, layer, relevance) -> dict:
        """Replace the quantity at ``layer``'s output by ``relevance`` and propagate it down.

        Parameters
        ----------
        x : array (batch, *input_shape)
        layer : str or keras.layers.Layer
            Where to inject (see :attr:`layer_names`).
        relevance : array (batch * k, *layer_output_shape) or (batch * k, n_units)
            One vector per sample (k = 1) or k per sample, sample-major: rows ``i*k .. i*k + k - 1``
            belong to sample ``i`` (the forward pass then runs once per sample, not once per vector;
            DeepLIFT, whose forward pass carries its reference, runs it on the repeated samples).

        Returns
        -------
        dict
            Layer name -> quantity at its output (``batch * k`` rows, in the order of ``relevance``),
            for ``layer`` and every layer below it. For the gradient this is the vector-Jacobian
            product of ``layer``'s output with ``relevance``.
        """
        (result,) = self.propagate_from_layers(x, {layer: relevance}).values()
        return result

    def propagate_from_layers(self, x, relevances: dict, copy: bool = True) -> dict:
        """:meth:`propagate_from` at several layers, each injection on its own, in one compiled call
        (one trace serves them all, and one forward pass; DeepLIFT: one per number of vectors per
        sample). The CSC protocol's injections.

        Parameters
        ----------
        x : array (batch, *input_shape)
        relevances : dict
            Layer (name or keras layer) -> the vectors to inject there, as for :meth:`propagate_from`
            (the number k of vectors per sample may differ between layers).
        copy : bool
            False: the arrays may be read-only views of TF's result buffers instead of copies (for
            callers that only read them: copying the CSC protocol's 110 M values per call took 0.1 s).
            Worker engines always return their own arrays.

        Returns
        -------
        dict
            Layer name -> what :meth:`propagate_from` returns for that injection.
        """
        return self._propagate_on(self._engine, x, relevances, copy)

    def _propagate_on(self, engine, x, relevances: dict, copy: bool = True) -> dict:
        """:meth:`propagate_from_layers` computed by ``engine`` (another engine over the same model)."""
        x = self._input(x)
        names, starts, injected, per_sample = self._injections(relevances, len(x))
        groups = [engine.reported_steps(start) for start in starts]
        offsets = np.cumsum([0, *map(len, groups)])
        # Reported steps are in forward order: each group's first entry is the model input's.
        values = self._run(lambda a, *r: engine.inject_many(a, starts, r, per_sample), x, *injected,
                           input_positions=tuple(offsets[:-1]), copy=copy)
        return {name: self._named(steps, values[begin:end], x, k)
                for name, steps, begin, end, k in zip(names, groups, offsets[:-1], offsets[1:], per_sample)}

    def prepare_propagate_from_layers(self, x, relevances: dict) -> None:
        """Compile (trace) the pass :meth:`propagate_from_layers` runs for these arguments (only their
        shapes matter) without running it; the later call reuses it. A thread can do this while
        another pass runs (of another analyzer, or of this one with other injections): the CSC
        protocol traces the next call during the current one."""
        x = self._input(x)
        _, starts, _, per_sample = self._injections(relevances, len(x))
        self._engine.prepare_inject_many(starts, per_sample)

    def _injections(self, relevances, batch_size) -> tuple:
        """(layer names, step indices, checked vectors, vectors per sample) of a ``relevances`` dict."""
        names, starts, injected, per_sample = [], [], [], []
        for name, relevance in injections(relevances, self.layer_names, self.model.name):
            start = self._model.layer_steps[name]
            checked, k = check_injected(relevance, self._model.steps[start].output_shape, self.dtype, batch_size)
            names.append(name), starts.append(start), injected.append(checked), per_sample.append(k)
        return names, starts, injected, per_sample


# --- creating analyzers ---------------------------------------------------------------------

def _native_analyzer(method, model, **params):
    return (method.analyzer_class or NativeAnalyzer)(method, model, **params)


#: Engine name -> factory ``(method, model, **params) -> analyzer``. Other engines register here
#: (:mod:`keras_xai.engines` does on import; nothing here imports it: the dependency goes one way).
ENGINES: dict = {"native": _native_analyzer}


def register_engine(name: str, factory: Callable) -> None:
    """Make ``create_analyzer(..., engine=name)`` use ``factory(method, model, **params)``."""
    ENGINES[name] = factory


def create_analyzer(name: str, model, engine: str = "native", **params):
    """Create an analyzer for ``model`` with the method ``name``.

    Parameters
    ----------
    name : str
        A method from :func:`keras_xai.list_analyzers`, e.g. "lrp.alpha_1_beta_0" (iNNvestigate's names).
    model : keras.Model
        The model to explain (without a final softmax: :func:`keras_xai.model_wo_softmax`).
    engine : str
        Which implementation computes the attributions (:func:`keras_xai.list_analyzers` says which
        engines offer a method):

        - "native" (default): this package's eager TF2 engine (float32 or float64, fastest);
        - "innvestigate": iNNvestigate 2.1.2, every analyzer by its own name and parameters, plus
          ``rect_grad`` and the residual rules for ``Add`` / BatchNormalization (option
          ``residual_rules``, default True);
        - "deeplift": deeplift 0.6.13: ``deep_lift.rescale``, ``deep_lift.reveal_cancel`` and
          ``deep_lift.ablation``, with converters for ``Add``, ``GlobalAveragePooling2D`` and
          ``ZeroPadding2D``.

        The two package engines run in a worker process (graph mode), started on first use;
        they compute in float32 and take ``timeout=`` (seconds per call). See
        :mod:`keras_xai.engines`.
    **params
        The method's parameters (e.g. ``epsilon=0.1``) and ``dtype="float64"`` (native engine).

    Returns
    -------
    An analyzer with ``analyze``, ``relevances`` and ``propagate_from``.
    """
    method = get_method(name)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; available: {sorted(ENGINES)}")
    if engine not in method.engines:
        raise ValueError(f"{name} is not available in the {engine} engine; use "
                         f"{' or '.join(f'engine={e!r}' for e in method.engines)}")
    return ENGINES[engine](method, model, **params)
