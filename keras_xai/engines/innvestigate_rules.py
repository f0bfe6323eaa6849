"""What the innvestigate worker adds to iNNvestigate 2.1.2 (imported in the worker process only).

- :func:`residual_mappings`: ``Add`` as a linear layer with identity weights (the inputs are
  concatenated along the channels and summed by a kernel of stacked identities) and
  ``BatchNormalization`` as the per-channel affine layer ``x * k + c`` with
  ``k = gamma / sqrt(var + eps)``, ``c = beta - mean * k``; the analyzer's own rule class is applied
  to these surrogate layers, as the authors of "When Explanations Lie" did (their
  ``monkey_patch_lrp_resnet.py``; they also clipped the relevance of ``Add`` inputs to [0, 1000],
  which we do not copy).
- :class:`RectGrad`: Kim et al. (2019), the gradient with the backward signal of every ReLU masked
  to the units whose importance ``activation * gradient`` exceeds its ``percentile``-th percentile
  in that layer (per sample): ``R_in = [a * R > tau(a * R)] * R``, replacing the ReLU's derivative.
- :class:`SelectOrMax`: iNNvestigate's ``NeuronSelection`` extended so that index -1 selects the
  maximal unit of that sample, which lets one analyzer serve both kinds of neuron selection.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow.keras.layers as klayers

import innvestigate.analyzer.relevance_based.relevance_analyzer as ranalyzer
import innvestigate.analyzer.relevance_based.relevance_rule as rrule
import innvestigate.backend as ibackend
import innvestigate.backend.checks as ichecks
from innvestigate.analyzer.deeptaylor import DeepTaylor
from innvestigate.analyzer.gradient_based import Gradient

from keras_xai import graph as keras_graph
# The native RectGrad's percentile (tf.contrib's "nearest"), which builds graph-mode ops as well.
from keras_xai.rect_grad import percentile_position, percentile_threshold  # noqa: F401


# --- neuron selection ------------------------------------------------------------------------

class SelectOrMax(klayers.Layer):
    """``gather_nd(Y, [[sample, unit], ...])`` where unit -1 means the sample's maximal unit."""

    def call(self, inputs, *_args, **_kwargs):
        outputs, index = inputs
        units = index[:, 1]
        maximal = tf.argmax(outputs, axis=-1, output_type=units.dtype)
        chosen = tf.where(units < 0, maximal, units)
        return tf.gather_nd(outputs, tf.stack([index[:, 0], chosen], axis=1))


def install_neuron_selection() -> None:
    """Make iNNvestigate's "index" mode use :class:`SelectOrMax` (this worker process only)."""
    import innvestigate.layers as ilayers
    ilayers.NeuronSelection = SelectOrMax


# --- residual support ------------------------------------------------------------------------

class IdentitySum(klayers.Layer):
    """The sum of ``parts`` equally shaped tensors, given concatenated along the last axis, as a
    linear layer: ``z = sum_k x_k * kernel[k]`` with ``kernel = ones((parts, channels))``, i.e. a
    1x1 convolution whose kernel is identity matrices stacked per input (no bias)."""

    def __init__(self, parts: int, channels: int, use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.parts, self.channels, self.use_bias = int(parts), int(channels), False

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.parts, self.channels),
                                      initializer="ones", trainable=False)
        super().build(input_shape)

    def call(self, inputs, *_args, **_kwargs):
        shape = tf.shape(inputs)
        split = tf.reshape(inputs, tf.concat([shape[:-1], [self.parts, self.channels]], axis=0))
        return tf.reduce_sum(split * self.kernel, axis=-2)

    def get_config(self):
        return dict(super().get_config(), parts=self.parts, channels=self.channels, use_bias=False)


class ChannelAffine(klayers.Layer):
    """``x * kernel + bias`` per channel (last axis): BatchNormalization at inference as a linear layer."""

    def __init__(self, channels: int, use_bias: bool = True, kernel_values=None, bias_values=None, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.use_bias = int(channels), bool(use_bias)
        self._kernel_values, self._bias_values = kernel_values, bias_values

    def build(self, input_shape):
        kernel = self._kernel_values if self._kernel_values is not None else np.ones(self.channels)
        self.kernel = self.add_weight(name="kernel", shape=(self.channels,), trainable=False,
                                      initializer=tf.constant_initializer(np.asarray(kernel, np.float32)))
        if self.use_bias:
            bias = self._bias_values if self._bias_values is not None else np.zeros(self.channels)
            self.bias = self.add_weight(name="bias", shape=(self.channels,), trainable=False,
                                        initializer=tf.constant_initializer(np.asarray(bias, np.float32)))
        super().build(input_shape)

    def call(self, inputs, *_args, **_kwargs):
        outputs = inputs * self.kernel
        return outputs + self.bias if self.use_bias else outputs

    def get_config(self):
        # The values travel with the config, so that the copies iNNvestigate's rules make are exact.
        return dict(super().get_config(), channels=self.channels, use_bias=self.use_bias,
                    kernel_values=self._kernel_values, bias_values=self._bias_values)


def batch_norm_affine(layer) -> tuple:
    """``(k, c)`` with ``BN(x) = x * k + c`` at inference (NumPy, float64 then float32)."""
    values = dict(zip([w.name.split("/")[-1].split(":")[0] for w in layer.weights], layer.get_weights()))
    variance = values["moving_variance"].astype(np.float64)
    mean = values["moving_mean"].astype(np.float64)
    gamma = values["gamma"].astype(np.float64) if layer.scale else np.ones_like(mean)
    beta = values["beta"].astype(np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def _rule_class(rule):
    return ranalyzer.LRP_RULES[rule] if isinstance(rule, str) else rule


def add_mapping(rule):
    """Reverse mapping of ``Add`` with ``rule`` applied to :class:`IdentitySum`."""
    rule = _rule_class(rule)

    def meta_mapping(layer, state):
        inputs = ibackend.to_list(layer.input)
        shapes = {tuple(x.shape.as_list()[1:]) for x in inputs}
        if len(shapes) != 1:
            from keras_xai.engines.worker_child import RemoteError
            raise RemoteError("UnsupportedLayerError",
                              f"layer {layer.name!r} (Add) adds tensors of different shapes {sorted(shapes)}; "
                              "the residual rules need equally shaped inputs (use residual_rules=False)")
        channels = int(inputs[0].shape[-1])
        concatenate = klayers.Concatenate(axis=-1)
        surrogate = IdentitySum(len(inputs), channels, name=f"{layer.name}_as_linear")
        surrogate(concatenate(inputs))
        applied = rule(surrogate, state)

        def apply(Xs, Ys, Rs, reverse_state):
            merged = concatenate(Xs) if len(Xs) > 1 else Xs[0]
            relevance = applied.apply([merged], Ys, Rs, reverse_state)[0]
            return [relevance[..., k * channels:(k + 1) * channels] for k in range(len(Xs))]

        return apply

    return meta_mapping


def batch_norm_mapping(rule):
    """Reverse mapping of ``BatchNormalization`` with ``rule`` applied to :class:`ChannelAffine`."""
    rule = _rule_class(rule)

    def meta_mapping(layer, state):
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = len(layer.input.shape)
        if [a % rank for a in axis] != [rank - 1]:
            from keras_xai.engines.worker_child import RemoteError
            raise RemoteError("UnsupportedLayerError",
                              f"layer {layer.name!r} (BatchNormalization) normalises axis {list(axis)}; "
                              "the residual rules handle the last (channel) axis only (use residual_rules=False)")
        kernel, bias = batch_norm_affine(layer)
        surrogate = ChannelAffine(len(kernel), kernel_values=kernel.tolist(), bias_values=bias.tolist(),
                                  name=f"{layer.name}_as_affine")
        surrogate(layer.input)
        return rule(surrogate, state).apply

    return meta_mapping


def _conv_rule(analyzer):
    """The rule an LRP analyzer applies to convolutions (used for Add and BatchNorm)."""
    if isinstance(analyzer, ranalyzer.LRPSequentialPresetA):
        return rrule.Alpha1Beta0Rule
    if isinstance(analyzer, ranalyzer.LRPSequentialPresetB):
        return rrule.Alpha2Beta1Rule
    if getattr(analyzer, "_kx_conv_rule", None) is not None:
        return analyzer._kx_conv_rule
    if analyzer._bn_layer_rule is not None:
        return analyzer._bn_layer_rule
    rules = analyzer._rule
    if isinstance(rules, str) or isinstance(rules, type):
        return rules
    if isinstance(rules, list):
        for entry in rules:
            if isinstance(entry, tuple):
                condition, rule = entry
                if condition is ichecks.is_conv_layer:
                    return rule
            else:
                return entry
    return rrule.ZRule


def residual_mappings(analyzer, user_params: dict) -> None:
    """Add the residual mappings to an LRP or Deep Taylor analyzer (before its model is built)."""
    if isinstance(analyzer, DeepTaylor):
        add_rule, bn_rule = rrule.Alpha1Beta0IgnoreBiasRule, rrule.WSquareRule
    elif isinstance(analyzer, ranalyzer.LRP):
        add_rule = _conv_rule(analyzer)
        bn_rule = user_params["bn_layer_rule"] if user_params.get("bn_layer_rule") is not None else add_rule
    else:
        return
    analyzer._add_conditional_reverse_mapping(ichecks.is_add_layer, add_mapping(add_rule), priority=10,
                                              name="keras_xai_add_as_linear")
    analyzer._add_conditional_reverse_mapping(ichecks.is_batch_normalization_layer, batch_norm_mapping(bn_rule),
                                              priority=10, name="keras_xai_batch_norm_as_affine")


# --- RectGrad ----------------------------------------------------------------------------------

def _pre_activation(output):
    """The ReLU's input inside a layer with a (fused or standalone) ReLU activation."""
    if output.op.type != "Relu":
        raise ValueError(f"rect_grad: expected the output of a ReLU, got {output.name} ({output.op.type}); "
                         "RectGrad is defined for plain ReLU activations")
    return output.op.inputs[0]


class RectGrad(Gradient):
    """RectGrad (Kim et al. 2019) on iNNvestigate's reverse machinery.

    At every layer with a ReLU, ``R_in = [a * R > tau] * R`` replaces the ReLU's derivative (as in
    the paper and the authors' ``nonlinearity_grad_override``), then the gradient of the layer's
    pre-activation is applied; ``tau`` is the per-sample ``percentile``-th percentile of ``a * R``
    over the layer (see :func:`keras_xai.rect_grad.percentile_position`). With ``tau < 0`` (low percentiles) inactive
    units pass the signal.

    :param percentile: Percentile (0-100) of ``activation * gradient`` a unit must exceed.
    """

    def __init__(self, model, percentile: float = 98.0, **kwargs):
        self._percentile = float(percentile)
        super().__init__(model, **kwargs)

    def _create_analysis(self, *args, **kwargs):
        percentile = self._percentile

        def rectified(Xs, Ys, reversed_Ys, _reverse_state):
            masked = []
            for activation, relevance in zip(Ys, reversed_Ys):
                importance = activation * relevance
                masked.append(tf.where(importance > percentile_threshold(importance, percentile), relevance,
                                       tf.zeros_like(relevance)))
            return ibackend.gradients(Xs, [_pre_activation(Y) for Y in Ys], masked)

        self._add_conditional_reverse_mapping(lambda layer: ichecks.contains_activation(layer, "relu"),
                                              rectified, name="rect_grad_relu")
        return super()._create_analysis(*args, **kwargs)


# --- keras.layers.ReLU ------------------------------------------------------------------------------

def install_relu_layer_fixes() -> None:
    """Treat ``keras.layers.ReLU`` like ``Activation("relu")`` (this worker process only).

    Upstream, Deconvnet fails on a ``ReLU`` layer (it copies the layer "without activation", which
    ``ReLU`` does not support), and LRP passes relevance through ``Activation`` layers but applies the
    gradient at ``ReLU`` layers (which differs for the w-square and flat rules).
    """
    from innvestigate.analyzer import gradient_based

    original_init = gradient_based.DeconvnetReverseReLULayer.__init__

    def deconvnet_init(self, layer, state):
        if isinstance(layer, klayers.ReLU):
            self._activation = klayers.Activation("relu")
            self._layer_wo_relu = klayers.Activation("linear")
            return
        original_init(self, layer, state)

    gradient_based.DeconvnetReverseReLULayer.__init__ = deconvnet_init

    original_default = ranalyzer.LRP._default_reverse_mapping

    def lrp_default(self, Xs, Ys, reversed_Ys, reverse_state):
        if isinstance(reverse_state["layer"], klayers.ReLU):
            return reversed_Ys
        return original_default(self, Xs, Ys, reversed_Ys, reverse_state)

    ranalyzer.LRP._default_reverse_mapping = lrp_default


# --- the input layer -----------------------------------------------------------------------------

def install_input_layer_check() -> None:
    """Let ``input_layer_rule`` and Deep Taylor's bounded rule see through ``ZeroPadding`` layers
    (upstream looks through Flatten, Permute and Reshape only, so the first convolution of a
    ResNet-50, which follows a ZeroPadding2D, got no input-layer rule); the native engine does the same."""
    original = ichecks.is_input_layer
    shape_only = (klayers.ZeroPadding1D, klayers.ZeroPadding2D, klayers.ZeroPadding3D)

    def is_input_layer(layer, ignore_reshape_layers: bool = True) -> bool:
        if original(layer, ignore_reshape_layers):
            return True
        if not ignore_reshape_layers:
            return False
        sources = ichecks.get_input_layers(layer)
        if not sources or not all(isinstance(s, shape_only) for s in sources):
            return False
        return all(is_input_layer(s, ignore_reshape_layers) or isinstance(s, klayers.InputLayer)
                   for s in sources)

    def is_input_or_padding(layer, ignore_reshape_layers=True):
        return is_input_layer(layer, ignore_reshape_layers)

    ichecks.is_input_layer = is_input_or_padding


# --- outputs with more than two axes --------------------------------------------------------------

def prepare_model(self, model):
    """``AnalyzerNetworkBase._prepare_model`` with its graph-mode bug fixed: it flattened outputs of
    rank > 2 by calling ``Flatten`` on the *list* of outputs, which fails in graph mode (this is how
    the innvestigate engine injects at convolutional layers)."""
    import tensorflow.keras.models as kmodels
    import innvestigate.layers as ilayers

    outputs = list(model.outputs)
    if len(outputs) > 1:
        raise ValueError("Only models with one output tensor are allowed.")
    analysis_inputs, stop_analysis_at_tensors = [], []
    if len(outputs[0].shape) > 2:
        outputs = [klayers.Flatten()(outputs[0])]
    mode = self._neuron_selection_mode
    if mode == "max_activation":
        selection = ilayers.MaxNeuronSelection(name="MaxNeuronSelection")
        outputs = [selection(outputs[0])]
        self._special_helper_layers.append(selection)
    elif mode == "index":
        indexing = klayers.Input(shape=(2,), dtype=np.int32, name="iNNvestigate_neuron_indexing")
        self._special_helper_layers.append(keras_graph.producer(indexing))
        analysis_inputs.append(indexing)
        stop_analysis_at_tensors.append(indexing)
        selection = ilayers.NeuronSelection(name="NeuronSelection")
        outputs = [selection([outputs[0], indexing])]
        self._special_helper_layers.append(selection)
    return kmodels.Model(inputs=model.inputs + analysis_inputs, outputs=outputs), analysis_inputs, \
        stop_analysis_at_tensors


def install_prepare_model_fix() -> None:
    from innvestigate.analyzer.network_base import AnalyzerNetworkBase
    AnalyzerNetworkBase._prepare_model = prepare_model
