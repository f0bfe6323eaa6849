"""``engine="deeplift"``: deeplift 0.6.13 in a worker process, with the native engine's API.

Methods (Shrikumar et al. 2017; "When Explanations Lie", eq. 13 and section 5):

- ``deep_lift.rescale``: the Rescale rule at every nonlinearity;
- ``deep_lift.reveal_cancel``: the RevealCancel rule at every nonlinearity;
- ``deep_lift.ablation``: the paper's ablation of eq. 13, whose two matrix chains are decoupled
  ("If the intermixing is removed by only considering W+ for the positive rule and W- for the
  negative rule, the two matrix chains become decoupled and converge"): in every linear layer, for
  every input unit whatever the sign of its difference from the reference, the positive multiplier
  is ``m_in+ = W+^T m_out+`` and the negative one ``m_in- = W-^T m_out-`` (``W+ = max(W, 0)``,
  ``W- = min(W, 0)``; Dense and Conv2D: their kernels; BatchNorm, ``k = gamma / sqrt(var + eps)``:
  ``k+ m_out+`` and ``k- m_out-``; Add, identity weights: ``m_out+`` and 0). The input's
  contributions are ``m+ dx+ + m- dx-``; nonlinearities and pooling are as in the other two
  methods, with the nonlinear rule ``nonlinear_mode`` ("reveal_cancel" by default, or "rescale").
  Summation-to-delta does not hold. An earlier reading (dropping only the terms of inputs below
  their reference) was replaced because it leaves the chains coupled: CSC at conv1 of the MNIST
  appendix-D net 0.79, against 0.990 decoupled.

``reference`` (default 0: the zero reference of the paper) is a number, an array shaped like one
input, or one reference per sample. What the analyzers return, as the native DeepLIFT analyzer
(:mod:`keras_xai.deeplift`): :meth:`analyze` the contributions of the input (except for the
ablation they sum to ``f(x) - f(reference)`` for the selected output); :meth:`relevances` the
multiplier at every layer's output (the input's entry: its contributions, equal to :meth:`analyze`)
-- where deeplift's positive and negative multipliers differ, the one of the unit's own difference
from the reference (``m+`` where it is > 0, ``m-`` where < 0, their mean at 0); :meth:`propagate_from`
sets the positive and negative multipliers of the chosen layer to the injected vector (the paper's
CSC) and returns the multipliers below it. :meth:`DeepLiftAnalyzer.contributions` and
:meth:`DeepLiftAnalyzer.propagate_contributions` return the contributions at every layer instead.

The worker converts the model with deeplift's Keras converter, plus converters for ``Add`` (a linear
layer with identity weights), ``GlobalAveragePooling2D``, ``ZeroPadding2D``, ``ReLU`` and linear
activations (so ResNet-50 converts), and deeplift's ``update_task_vector`` speed fix.
"""
from __future__ import annotations

import numpy as np

from keras_xai import graph as keras_graph
from keras_xai.canonize import UnsupportedLayerError
from keras_xai.engines.base import WorkerAnalyzer

ENGINE = "deeplift"

NONLINEAR_MODES = ("rescale", "reveal_cancel")

#: name -> (family, parameters with defaults, description)
METHODS = {
    "deep_lift.rescale": ("deep_lift", {"reference": 0.0}, "DeepLIFT with the Rescale rule (zero reference by default)."),
    "deep_lift.reveal_cancel": ("deep_lift", {"reference": 0.0},
                                "DeepLIFT with the RevealCancel rule (zero reference by default)."),
    "deep_lift.ablation": ("deep_lift", {"reference": 0.0, "nonlinear_mode": "reveal_cancel"},
                           "DeepLIFT with decoupled chains (the paper's ablation, eq. 13): in every linear "
                           "layer positive multipliers flow only through W+, negative ones only through W-."),
}

#: Keras layer types the worker converts.
SUPPORTED_LAYERS = (
    "InputLayer", "Dense", "Conv2D", "Conv1D", "MaxPooling2D", "AveragePooling2D", "MaxPooling1D",
    "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "ZeroPadding2D", "BatchNormalization", "Dropout", "Flatten", "Activation", "ReLU", "Add",
    "Concatenate",
)
#: Activations deeplift converts (fused or as Activation layers).
SUPPORTED_ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")


def _activation_name(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def check_convertible(model, method: str) -> None:
    """Raise :class:`UnsupportedLayerError` naming the first layer deeplift cannot convert."""
    keras = keras_graph.keras_of(model)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({kind}) cannot be converted by deeplift for {method}; "
                f"supported layers: {', '.join(SUPPORTED_LAYERS)}")
        activation = _activation_name(layer)
        if activation is not None and activation not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({kind}) uses the {activation!r} activation, which deeplift cannot "
                f"convert for {method}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
        if isinstance(layer, keras.layers.ReLU) and (
                layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0):
            raise UnsupportedLayerError(f"layer {layer.name!r} (ReLU) has max_value/negative_slope/threshold; "
                                        f"deeplift converts the plain ReLU only")
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(f"layer {layer.name!r} (Conv2D) is dilated; deeplift supports dilation 1 only")
        if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) != 1:
            raise UnsupportedLayerError(f"layer {layer.name!r} (Conv2D) is grouped; deeplift supports groups=1 only")
    last = keras_graph.output_layer(model)
    if isinstance(last, (keras.layers.Activation, keras.layers.ReLU)) or \
            _activation_name(last) not in (None, "linear"):
        raise UnsupportedLayerError(
            f"the output layer {last.name!r} ({type(last).__name__}) applies an activation; DeepLIFT explains "
            "the output of a linear layer (e.g. the logits): end the model with a linear Dense layer")


class DeepLiftAnalyzer(WorkerAnalyzer):
    """A deeplift 0.6.13 explanation run in the worker process; see :mod:`keras_xai.engines.deeplift_engine`."""

    engine = ENGINE
    worker_module = "keras_xai.engines.deeplift_worker_main"
    model_variant = "functional:"

    def _check_model(self, model):
        super()._check_model(model)
        check_convertible(model, self.name)

    def _validate_params(self, params: dict) -> None:
        if self.name not in METHODS:
            raise ValueError(f"the deeplift engine has no method {self.name!r}; it offers {', '.join(sorted(METHODS))}")
        allowed = METHODS[self.name][1]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise TypeError(f"{self.name} (engine='deeplift') got unexpected parameter(s) {unknown}; "
                            f"it accepts {sorted(allowed)}")
        mode = params.get("nonlinear_mode", "reveal_cancel")
        if mode not in NONLINEAR_MODES:
            raise ValueError(f"{self.name}: nonlinear_mode must be one of {NONLINEAR_MODES}, got {mode!r}")
        reference = np.asarray(params.get("reference", 0.0))
        if not np.issubdtype(reference.dtype, np.number) or not np.isfinite(reference).all():
            raise ValueError(f"{self.name}: reference must be finite numbers, got {params.get('reference')!r}")

    def _model_to_save(self, model):
        # deeplift keeps layer names only when converting functional models.
        if isinstance(model, keras_graph.keras_of(model).Sequential):
            return keras_graph.with_outputs(model, model.outputs)
        return model

    def _method_params(self) -> dict:
        return {k: v for k, v in self.params.items() if k != "reference"}

    def _extra_arrays(self, x: np.ndarray) -> dict:
        reference = np.asarray(self.params.get("reference", 0.0), dtype=np.float32)
        try:
            if reference.ndim == x.ndim:
                reference = np.broadcast_to(reference, x.shape)
            else:
                reference = np.broadcast_to(reference, x.shape[1:])[None].repeat(len(x), axis=0)
        except ValueError as error:
            raise ValueError(f"{self.name}: reference of shape {reference.shape} does not fit inputs of shape "
                             f"{x.shape}: give a number, one input ({x.shape[1:]}) or one per sample") from error
        return {"reference": np.ascontiguousarray(reference)}

    def relevances(self, x, neuron_selection="max_activation") -> dict:
        """The multiplier of the selected output at every layer's output (layer name -> array); the
        input's entry is its contributions (equal to :meth:`analyze`). See the module docstring."""
        return self._relevances(x, neuron_selection, quantity="multipliers")

    def propagate_from(self, x, layer, relevance) -> dict:
        """Both multipliers at ``layer``'s output set to ``relevance`` (one or k vectors per sample,
        shaped like the output or flat, as :meth:`keras_xai.analyzer.NativeAnalyzer.propagate_from`);
        returns the multipliers at ``layer`` and every layer below it (the input's entry: its
        contributions)."""
        return self._propagate_from(x, layer, relevance, quantity="multipliers")

    def contributions(self, x, neuron_selection="max_activation") -> dict:
        """Contributions to the selected output at every layer's output (layer name -> array); the
        input's entry equals :meth:`analyze`."""
        return self._relevances(x, neuron_selection, quantity="contributions")

    def propagate_contributions(self, x, layer, relevance) -> dict:
        """Like :meth:`propagate_from`, but the contributions at ``layer`` and every layer below it."""
        return self._propagate_from(x, layer, relevance, quantity="contributions")


def create(method, model, **params) -> DeepLiftAnalyzer:
    """Factory registered as ``engine="deeplift"``."""
    return DeepLiftAnalyzer(method, model, **params)
