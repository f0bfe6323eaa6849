r"""PatternNet and PatternAttribution (Kindermans et al. 2018), fitted from data.

Both methods replace, in the backward pass of the gradient, the weights of every kernel layer
(Dense, Conv2D): PatternNet by the *pattern* ``A`` (Sixt et al. eq. 10,
:math:`r_l = A_l^T r_{l+1}`), PatternAttribution by ``W * A`` (eq. 11). ReLUs keep their
gradient mask; every other layer is traversed with its gradient. Both start from the value of the
selected output unit, as iNNvestigate 1.x does.

The patterns are those of the two-component estimator ``S_a+-`` (:mod:`keras_xai.pattern_estimator`);
the rule that uses them is :mod:`keras_xai.pattern_rule`. This module is the analyzer: fitting
(streamed statistics), loading and saving patterns.

Differences from iNNvestigate 1.x
---------------------------------
- iNNvestigate only supports Dense/Conv2D/pooling/Flatten nets for these methods. Here
  BatchNormalization (an affine map), ``Add`` and average pooling are traversed with their
  gradient: patterns exist for kernel layers only, as in iNNvestigate.
- iNNvestigate rescales the backward signal at "bottleneck" tensors to max |value| = 1 per sample
  (``reverse_project_bottleneck_layers``); we do not, so maps differ from iNNvestigate's by a
  positive factor per sample (irrelevant for normalised maps and cosine similarities).
- A kernel layer applied several times (shared) gets one pattern from the pooled statistics of all
  its applications (iNNvestigate raises).

Patterns describe the weights they were fitted with: after changing the model's weights, fit again
(PatternAttribution reads ``W`` live, ``A`` stays as fitted).
"""
from __future__ import annotations

import functools
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_xai.analyzer import NativeAnalyzer
from keras_xai.analyzers import Recipe, register
from keras_xai.kinds import Kind
from keras_xai.modifiers import KEEP
from keras_xai.pattern_estimator import MEAN_Y_CHOICES, PATTERN_TYPES, PatternStatistics, patterns_from_statistics
from keras_xai.pattern_rule import pattern_recipe
from keras_xai.validation import check_batch

#: Steps the search for "the ReLU that follows" walks through (per-unit, shape-preserving).
_MASK_SEARCH_KINDS = frozenset({Kind.BATCH_NORM, Kind.ADD})


class PatternsNotFittedError(RuntimeError):
    """A pattern method was used before its patterns were fitted or loaded."""


def _summed(values, axes) -> tf.Tensor:
    """Per-unit sum over ``axes`` (in the compute dtype: one batch), as float64 for accumulating."""
    return tf.cast(tf.reduce_sum(values, axis=axes), tf.float64)


def _tf_function(function, *signature):
    # As Engine._tf_function: a partial has no code object, so TF does not warn about retracing
    # when several analyzers compile the same method.
    return tf.function(functools.partial(function), input_signature=list(signature), autograph=False)


class PatternAnalyzer(NativeAnalyzer):
    """A :class:`~keras_xai.analyzer.NativeAnalyzer` whose kernel layers use fitted patterns.

    Create it with ``keras_xai.create_analyzer("pattern.net" | "pattern.attribution", model,
    patterns=None | dict | "file.npz")`` and call :meth:`fit` (or pass/load patterns) before
    :meth:`analyze`, :meth:`relevances` or :meth:`propagate_from`.

    Parameters
    ----------
    method, model, dtype
        As for :class:`~keras_xai.analyzer.NativeAnalyzer`.
    patterns : None, dict or path
        Patterns to start with: ``{layer name: array shaped like its kernel}`` (e.g. another
        analyzer's :attr:`patterns`) or a ``.npz`` file written by :meth:`save_patterns`.
    """

    def __init__(self, method, model, dtype="float32", **params):
        super().__init__(method, model, dtype=dtype, **params)
        self._store = self._recipe.state
        self._kernel_steps = {}  # layer name -> its kernel steps (several if the layer is shared)
        for step in self._model.steps:
            if step.kind.has_kernel:
                self._kernel_steps.setdefault(step.layer.name, []).append(step)
        if not self._kernel_steps:
            raise ValueError(f"model {model.name!r} has no Dense or Conv2D layer: {method.name} has nothing "
                             "to fit patterns for")
        self._kernel_shapes = {name: tuple(steps[0].layer.kernel.shape) for name, steps in self._kernel_steps.items()}
        for name, shape in self._kernel_shapes.items():
            self._store.variables[name] = tf.Variable(tf.zeros(shape, self.dtype), trainable=False,
                                                      name=f"pattern_{name}")
        consumers = {}
        for step in self._model.steps:
            for source in step.inputs:
                consumers.setdefault(source, []).append(step)
        self._mask_sources = {step.index: self._mask_source(step.index, consumers)
                              for group in self._kernel_steps.values() for step in group}
        self._pattern_arrays = None
        #: Number of images the current patterns were fitted on (None: loaded or not fitted).
        self.fitted_on = None
        self._statistics_functions = {}
        self._accumulators = None
        if self._store.initial is not None:
            self.load_patterns(self._store.initial)

    def __repr__(self):
        state = "fitted" if self._pattern_arrays is not None else "not fitted"
        return (f"<PatternAnalyzer {self.name!r} on model {self.model.name!r}, patterns {state}, "
                f"dtype={self.dtype.name}>")

    # --- patterns ------------------------------------------------------------------------------

    @property
    def pattern_layers(self) -> list:
        """Names of the layers that have a pattern (Dense and Conv2D), forward order."""
        return list(self._kernel_steps)

    @property
    def patterns(self) -> dict | None:
        """``{layer name: pattern shaped like its kernel}`` (float64 copies), or None before
        :meth:`fit` / :meth:`load_patterns`."""
        if self._pattern_arrays is None:
            return None
        return {name: array.copy() for name, array in self._pattern_arrays.items()}

    def _require_patterns(self):
        if self._pattern_arrays is None:
            raise PatternsNotFittedError(
                f"{self.name} on model {self.model.name!r} has no patterns yet: call analyzer.fit(x) with "
                "training images, or pass patterns=... (a dict or a .npz file from save_patterns) to "
                "create_analyzer / load_patterns"
            )

    def load_patterns(self, patterns) -> "PatternAnalyzer":
        """Use ``patterns``: a dict ``{layer name: array}`` or the path of a ``.npz`` file.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If layers are missing or unknown, or a shape differs from the layer's kernel (the
            message names the layer and both shapes), or a pattern is not finite.
        """
        if isinstance(patterns, (str, os.PathLike)):
            path = Path(patterns)
            if not path.is_file():
                raise FileNotFoundError(f"pattern file {str(path)!r} does not exist")
            try:
                with np.load(path, allow_pickle=False) as stored:
                    patterns = {name: stored[name] for name in stored.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise ValueError(f"pattern file {str(path)!r} is not a .npz of arrays saved by save_patterns "
                                 f"({type(error).__name__}: {error})") from None
            origin = f"pattern file {str(path)!r}"
        elif isinstance(patterns, Mapping):
            origin = "the given patterns"
        else:
            raise TypeError(f"patterns must be a dict {{layer name: array}} or a path to a .npz file, "
                            f"got {type(patterns).__name__}")
        missing = [name for name in self._kernel_steps if name not in patterns]
        unknown = [name for name in patterns if name not in self._kernel_steps]
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"no pattern for layer(s) {missing}")
            if unknown:
                problems.append(f"pattern(s) for layer(s) {unknown} that have no kernel in the model")
            raise ValueError(f"{origin} do not fit model {self.model.name!r}: {'; '.join(problems)}; "
                             f"layers with patterns: {self.pattern_layers}")
        arrays = {}
        for name, expected in self._kernel_shapes.items():
            array = np.asarray(patterns[name])
            if array.shape != expected:
                raise ValueError(f"layer {name!r}: pattern shape {array.shape} does not match its kernel "
                                 f"shape {expected} ({origin})")
            if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
                raise ValueError(f"layer {name!r}: the pattern must hold finite floating-point numbers ({origin})")
            arrays[name] = array.astype(np.float64)
        self._set_patterns(arrays)
        self.fitted_on = None
        return self

    def _set_patterns(self, arrays: dict):
        for name, array in arrays.items():
            self._store.variables[name].assign(array.astype(self.dtype.as_numpy_dtype))
        self._pattern_arrays = arrays

    def save_patterns(self, path) -> Path:
        """Write the patterns to a ``.npz`` file (one array per layer name), atomically.

        A missing ``.npz`` suffix is added, as NumPy does. Returns the path written.
        """
        self._require_patterns()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **self._pattern_arrays)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return path

    # --- fitting -------------------------------------------------------------------------------

    @staticmethod
    def _mask_source(index: int, consumers: dict) -> int:
        """The step whose output > 0 says where the unit of kernel step ``index`` is active: the
        ReLU that follows it (through BatchNorm/Add/linear activations), else the step itself."""
        current = index
        while len(consumers.get(current, [])) == 1:
            (following,) = consumers[current]
            if following.kind is Kind.ACTIVATION and following.operation.is_relu:
                return following.index
            walkable = following.kind in _MASK_SEARCH_KINDS or (
                following.kind is Kind.ACTIVATION and following.operation.name == "linear")
            if not walkable:
                break
            current = following.index
        return index

    def _new_accumulators(self) -> dict:
        accumulators = {}
        for name, shape in self._kernel_shapes.items():
            units = shape[-1]
            accumulators[name] = {
                "rows": tf.Variable(tf.zeros((), tf.float64), trainable=False),
                "active": tf.Variable(tf.zeros(units, tf.float64), trainable=False),
                "sum_x": tf.Variable(tf.zeros(shape, tf.float64), trainable=False),
                "sum_xy": tf.Variable(tf.zeros(shape, tf.float64), trainable=False),
                "sum_y": tf.Variable(tf.zeros(units, tf.float64), trainable=False),
                "sum_y_active": tf.Variable(tf.zeros(units, tf.float64), trainable=False),
            }
        return accumulators

    def _statistics_function(self, pattern_type: str):
        """Compiled ``add_batch(x)``: adds one batch's sums to the accumulators."""
        if pattern_type in self._statistics_functions:
            return self._statistics_functions[pattern_type]
        steps = self._model.steps
        accumulators = self._accumulators

        def add_batch(x):
            activations = {0: x}
            for step in steps[1:]:
                activations[step.index] = step.operation.forward([activations[i] for i in step.inputs])
            for name, group in self._kernel_steps.items():
                target = accumulators[name]
                for step in group:
                    inputs = [activations[step.inputs[0]]]
                    y = activations[step.index]
                    if getattr(step.layer, "bias", None) is not None:
                        y = y - step.operation.parameter("bias", KEEP)  # bias-free, without a second conv
                    if pattern_type == "linear":
                        mask = tf.ones_like(y)
                    else:
                        mask = tf.cast(activations[self._mask_sources[step.index]] > 0, y.dtype)
                    masked_y = mask * y
                    units = y.shape[-1]
                    # sums over the active samples of x and of x*y, in one kernel-gradient op
                    sums = tf.cast(step.operation.kernel_vjp(inputs, tf.concat([mask, masked_y], -1)), tf.float64)
                    axes = list(range(y.shape.rank - 1))
                    target["sum_x"].assign_add(sums[..., :units])
                    target["sum_xy"].assign_add(sums[..., units:])
                    target["active"].assign_add(_summed(mask, axes))
                    target["sum_y_active"].assign_add(_summed(masked_y, axes))
                    target["sum_y"].assign_add(_summed(y, axes))
                    target["rows"].assign_add(tf.cast(tf.size(y) // units, tf.float64))
            return tf.constant(0)

        spec = tf.TensorSpec([None, *self.input_shape[1:]], self.dtype)
        self._statistics_functions[pattern_type] = _tf_function(add_batch, spec)
        return self._statistics_functions[pattern_type]

    def _batches(self, x, batch_size: int):
        """``(batches, total images or None)`` from an array or an iterable of batches."""
        if isinstance(x, (np.ndarray, tf.Tensor)) or (hasattr(x, "shape") and hasattr(x, "dtype")):
            array = self._input(x)
            return (array[i:i + batch_size] for i in range(0, len(array), batch_size)), len(array)
        if isinstance(x, Iterable) and not isinstance(x, (str, bytes, Mapping)):
            def checked():
                for position, batch in enumerate(x):
                    if isinstance(batch, tuple):  # (x, y) or (x, y, weights) as Keras generators yield
                        batch = batch[0]
                    array = check_batch(batch, self.input_shape, self.dtype, f"batch {position}")
                    for i in range(0, len(array), batch_size):
                        yield array[i:i + batch_size]
            return checked(), None
        raise TypeError(f"fit expects an array (n, {', '.join(map(str, self.input_shape[1:]))}) or an "
                        f"iterable of such batches, got {type(x).__name__}")

    def fit(self, x, batch_size: int = 64, verbose: bool = False, pattern_type: str = "relu",
            mean_y: str = "all") -> "PatternAnalyzer":
        """Fit the patterns of every Dense/Conv2D layer from data, in one streaming pass.

        Parameters
        ----------
        x : array (n, *input_shape) or iterable of such batches
            Training images as the model sees them (an iterable may also yield ``(x, y)`` tuples).
        batch_size : int
            Images per compiled call (larger batches of an iterable are split).
        verbose : bool
            Show a tqdm progress bar.
        pattern_type : {"relu", "linear"}
            The two-component estimator (statistics over active units) or the linear one.
        mean_y : {"all", "active"}
            ``E[y]`` over all samples (iNNvestigate 1.x, default) or over the active ones (eq. 40
            as Sixt et al. write it).

        Returns
        -------
        self
        """
        if pattern_type not in PATTERN_TYPES:
            raise ValueError(f"pattern_type must be one of {PATTERN_TYPES}, got {pattern_type!r}")
        if mean_y not in MEAN_Y_CHOICES:
            raise ValueError(f"mean_y must be one of {MEAN_Y_CHOICES}, got {mean_y!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        batches, total = self._batches(x, int(batch_size))
        if self._accumulators is None:
            self._accumulators = self._new_accumulators()
        for variables in self._accumulators.values():
            for variable in variables.values():
                variable.assign(tf.zeros_like(variable))
        add_batch = self._statistics_function(pattern_type)
        from tqdm.auto import tqdm

        seen = 0
        with tqdm(total=total, disable=not verbose, unit="img", desc=f"fitting {self.name} patterns") as progress:
            for batch in batches:
                add_batch(batch)
                seen += len(batch)
                progress.update(len(batch))
        if seen == 0:
            raise ValueError("fit got no images: give an array (n, ...) with n >= 1 or a non-empty iterable")
        arrays = {}
        for name, steps in self._kernel_steps.items():
            values = {key: variable.numpy() for key, variable in self._accumulators[name].items()}
            kernel = steps[0].layer.kernel.numpy().astype(np.float64)
            arrays[name] = patterns_from_statistics(PatternStatistics(**values), kernel, mean_y)
        self._set_patterns(arrays)
        self.fitted_on = seen
        return self

    # --- the API, guarded -------------------------------------------------------------------------

    def analyze(self, x, neuron_selection="max_activation") -> np.ndarray:
        self._require_patterns()
        return super().analyze(x, neuron_selection)

    def relevances(self, x, neuron_selection="max_activation") -> dict:
        self._require_patterns()
        return super().relevances(x, neuron_selection)

    def propagate_from_layers(self, x, relevances: dict, copy: bool = True) -> dict:
        self._require_patterns()  # propagate_from goes through here too
        return super().propagate_from_layers(x, relevances, copy)

    def prepare_propagate_from_layers(self, x, relevances: dict) -> None:
        self._require_patterns()
        super().prepare_propagate_from_layers(x, relevances)

    analyze.__doc__ = NativeAnalyzer.analyze.__doc__
    relevances.__doc__ = NativeAnalyzer.relevances.__doc__
    propagate_from_layers.__doc__ = NativeAnalyzer.propagate_from_layers.__doc__
    prepare_propagate_from_layers.__doc__ = NativeAnalyzer.prepare_propagate_from_layers.__doc__


@register("pattern.net", "pattern", reduction="sum", analyzer_class=PatternAnalyzer)
def pattern_net(patterns=None) -> Recipe:
    """PatternNet: the gradient with every kernel replaced by its fitted pattern A (eq. 10)."""
    return pattern_recipe(attribution=False, patterns=patterns)


@register("pattern.attribution", "pattern", reduction="sum", analyzer_class=PatternAnalyzer)
def pattern_attribution(patterns=None) -> Recipe:
    """PatternAttribution: the gradient with every kernel replaced by W * A (eq. 11)."""
    return pattern_recipe(attribution=True, patterns=patterns)
