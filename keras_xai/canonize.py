"""Turn Keras layers into the engine's canonical steps.

- a ``Dense``/``Conv2D`` with a fused activation becomes two steps (linear, then activation), so
  every rule sees one kind of operation at a time;
- ``BatchNormalization`` becomes a per-channel affine layer
  ``k = gamma / sqrt(var + eps)``, ``c = beta - mean * k``, and ``Add`` a linear layer with identity
  weights, so that every LRP rule (alpha-beta and z+ included) acts on them, as the authors of
  "When Explanations Lie" did for ResNet-50;
- :func:`model_wo_softmax` strips a final softmax so that the logits are explained.

The user's model is never modified.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import tensorflow as tf

from keras_xai import graph as keras_graph
from keras_xai import operations as ops
from keras_xai.graph import ModelGraph, Node
from keras_xai.kinds import Kind
from keras_xai.lstm_operation import LSTMOperation

#: Keras layer types the native engine supports (Dropout and InputLayer are handled by the graph).
SUPPORTED_LAYER_TYPES = (
    "InputLayer", "Dense", "Conv2D", "Activation", "ReLU", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "ZeroPadding2D", "Flatten", "Reshape", "Dropout", "BatchNormalization",
    "Add", "Concatenate", "LSTM",
)


class UnsupportedLayerError(ValueError):
    """A layer the native engine (or the chosen method) cannot propagate through."""


@dataclass(frozen=True)
class Step:
    """One canonical operation of the model, in topological order.

    Attributes
    ----------
    index : int
        Position in the step list (0 is the model input).
    name : str
        Layer name; the linear half of a layer with a fused activation is ``"<name>/linear"``.
    layer : keras.layers.Layer or None
        The Keras layer this step comes from (Keras 2 or Keras 3); None for a step made by hand,
        e.g. to test a rule on one operation.
    kind : Kind
        What the operation is; its families (linear, structural, ...) are properties of the kind.
    operation : keras_xai.operations.Operation or None
        The pure TF operation (None for the input).
    inputs : tuple of int
        Indices of the steps whose outputs this step consumes.
    output_shape : tuple
        Static output shape including the batch dimension.
    reported : bool
        True if the step's output is a layer's output (reported by ``relevances``).
    first_layer : bool
        True for a Dense/Conv2D step fed by the model input through shape-only layers
        (where an ``input_layer_rule`` applies).
    inputs_nonnegative : tuple of bool
        For each input, whether it is provably >= 0 (it comes from a ReLU); rules use it to skip
        work on the (then all-zero) negative part. Default: False for every input.
    output_layer : bool
        True for the Dense/Conv2D step whose output is the model output, up to Flatten/Reshape
        and linear activations (the "final fc" of contrastive Excitation Backprop).
    """

    index: int
    name: str
    layer: object
    kind: Kind
    operation: ops.Operation | None
    inputs: tuple
    output_shape: tuple
    reported: bool = True
    first_layer: bool = False
    inputs_nonnegative: tuple = ()
    output_layer: bool = False

    @property
    def is_linear(self) -> bool:
        return self.kind.is_linear

    @property
    def is_fused_activation(self) -> bool:
        return self.kind is Kind.ACTIVATION and self.operation.fused

    def __post_init__(self):
        if not self.inputs_nonnegative:  # a step made by hand (a rule's test): nothing known
            object.__setattr__(self, "inputs_nonnegative", (False,) * len(self.inputs))

    def describe(self) -> str:
        """``'conv1' (Conv2D)``, for error messages (a step made without a layer: its name and kind)."""
        if self.layer is None:
            return f"{self.name!r} ({self.kind})"
        return f"{self.layer.name!r} ({type(self.layer).__name__})"


@dataclass(frozen=True)
class CanonicalModel:
    """The canonical steps of a model plus the lookups the analyzer needs.

    Attributes
    ----------
    steps : tuple of Step
    output_index : int
        The step producing the model output.
    layer_steps : dict
        Layer name -> index of the step whose output is that layer's output (includes Dropout
        aliases).
    """

    steps: tuple
    output_index: int
    layer_steps: dict


# --- softmax stripping -----------------------------------------------------------------------

#: Activations recognised by identity, so that ``activation=tf.nn.relu`` counts as "relu".
_KNOWN_ACTIVATIONS = ("linear", "relu", "softmax", "tanh", "sigmoid", "elu", "selu", "softplus",
                      "softsign", "swish", "gelu", "exponential", "hard_sigmoid")


def _activation_name(layer) -> str | None:
    """Name of the activation a layer applies (None if it has none)."""
    keras = keras_graph.keras_of(layer)
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if isinstance(activation, str):
        return activation
    return _function_name(activation, keras)


def _function_name(function, keras) -> str:
    """Keras' name of an activation function (``tf.nn.relu`` counts as "relu")."""
    for name in _KNOWN_ACTIVATIONS:
        if function is keras.activations.get(name):
            return name
    # TensorFlow's own functions (activation=tf.nn.softmax) are versioned: softmax_v2.
    name = getattr(function, "__name__", type(function).__name__)
    return {"softmax_v2": "softmax", "identity": "linear"}.get(name, name)


def ends_in_softmax(model) -> bool:
    """True if the model's output layer applies a softmax."""
    return _activation_name(keras_graph.output_layer(model)) == "softmax"


def model_wo_softmax(model):
    """Return a model computing the logits, i.e. ``model`` without its final softmax.

    The new model shares the layers (and weights) of ``model``; if the softmax is fused into the
    last Dense/Conv2D, that layer is replaced by a copy with a linear activation and the same
    weights. ``model`` itself is not modified.

    Raises
    ------
    ValueError
        If the model does not end in a softmax.
    """
    keras_graph.check_model(model)
    last = keras_graph.output_layer(model)
    if _activation_name(last) != "softmax":
        raise ValueError(
            f"model {model.name!r} does not end in a softmax (its output layer {last.name!r} is "
            f"{type(last).__name__}); it can be analyzed as it is"
        )
    layers = keras_graph.keras_of(model).layers
    layer_input = last.input
    if isinstance(last, (layers.Activation, layers.Softmax)):
        logits = layer_input
    else:
        config = dict(last.get_config(), activation="linear", name=f"{last.name}_logits")
        replacement = type(last).from_config(config)
        logits = replacement(layer_input)
        replacement.set_weights(last.get_weights())
    return keras_graph.with_outputs(model, logits)


# --- layer -> operation ----------------------------------------------------------------------

def _unsupported(layer, reason: str, method: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r} ({type(layer).__name__}) has no rule in {method}: {reason}; "
        f"supported layers: {', '.join(SUPPORTED_LAYER_TYPES)}"
    )


def _activation_operation(layer, name: str, fused: bool, method: str) -> ops.ActivationOperation:
    if name == "softmax":
        raise _unsupported(
            layer, "softmax inside the model (explain logits: keras_xai.model_wo_softmax(model))",
            method,
        )
    function = (layer.activation if callable(getattr(layer, "activation", None))
                else keras_graph.keras_of(layer).activations.get(name))
    return ops.ActivationOperation(name, function, fused=fused)


def _batch_norm_operation(layer, rank: int, dtype, method: str) -> ops.AffineOperation:
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if [a % rank for a in axes] != [rank - 1]:
        raise _unsupported(layer, f"normalisation axis {layer.axis} (only the last axis)", method)

    def scale():
        inverse = tf.math.rsqrt(tf.cast(layer.moving_variance, dtype) + layer.epsilon)
        return inverse * tf.cast(layer.gamma, dtype) if layer.scale else inverse

    def offset():
        shifted = -tf.cast(layer.moving_mean, dtype) * scale()
        return shifted + tf.cast(layer.beta, dtype) if layer.center else shifted

    return ops.AffineOperation(scale, offset)


#: Activations computed by TF's own ops (dtype-agnostic); others by the layer's Keras function.
_TF_ACTIVATIONS = {"tanh": tf.tanh, "sigmoid": tf.sigmoid, "linear": tf.identity, "relu": tf.nn.relu}


def _lstm_operation(node: Node, graph: ModelGraph, dtype, method: str) -> LSTMOperation:
    layer = node.layer
    keras = keras_graph.keras_of(layer)
    for flag in ("go_backwards", "stateful", "return_state"):
        if getattr(layer, flag, False):
            raise _unsupported(layer, f"an LSTM with {flag}=True", method)
    if getattr(layer, "time_major", False):
        raise _unsupported(layer, "a time-major LSTM", method)
    steps = graph.nodes[node.inputs[0]].output_shape[1]
    if steps is None:
        raise _unsupported(layer, "an LSTM over sequences of unknown length (give the Input a fixed number of "
                                  "time steps)", method)
    cell = layer.cell

    def activation(function):
        return _TF_ACTIVATIONS.get(_function_name(function, keras), function)

    return LSTMOperation(cell.kernel, cell.recurrent_kernel, cell.bias if cell.use_bias else None, cell.units,
                         bool(layer.return_sequences), activation(cell.activation),
                         activation(cell.recurrent_activation), dtype)


def _reshape_target(node: Node, layers) -> tuple:
    """Static per-sample output shape of Flatten/Reshape (``-1`` only where it is unknown)."""
    shape = tuple(node.output_shape[1:])
    if all(d is not None for d in shape):
        return shape
    if isinstance(node.layer, layers.Flatten):
        return (-1,)
    return tuple(node.layer.target_shape)


def _layer_operations(node: Node, graph: ModelGraph, dtype, method: str) -> tuple:
    """``(kind, operation)`` or, for a fused activation, two such pairs."""
    layer, L = node.layer, graph.layers
    if isinstance(layer, L.Dense):
        linear = (Kind.DENSE, ops.DenseOperation(layer.kernel, layer.bias, dtype))
    elif isinstance(layer, L.Conv2D) and type(layer) is L.Conv2D:
        if layer.data_format != "channels_last" or layer.groups != 1:
            raise _unsupported(layer, "only channels_last convolutions with groups=1", method)
        linear = (Kind.CONV2D, ops.Conv2DOperation(
            layer.kernel, layer.bias, layer.strides, layer.padding, layer.dilation_rate, dtype))
    elif isinstance(layer, L.BatchNormalization):
        rank = len(graph.nodes[node.inputs[0]].output_shape)
        return ((Kind.BATCH_NORM, _batch_norm_operation(layer, rank, dtype, method)),)
    elif isinstance(layer, L.Add):
        return ((Kind.ADD, ops.SumOperation()),)
    elif isinstance(layer, L.AveragePooling2D):
        return ((Kind.AVERAGE_POOLING, ops.AveragePoolingOperation(layer.pool_size, layer.strides, layer.padding)),)
    elif isinstance(layer, L.GlobalAveragePooling2D):
        return ((Kind.GLOBAL_AVERAGE_POOLING, ops.GlobalAveragePoolingOperation(layer.keepdims)),)
    elif isinstance(layer, L.MaxPooling2D):
        return ((Kind.MAX_POOLING, ops.MaxPoolingOperation(layer.pool_size, layer.strides, layer.padding)),)
    elif isinstance(layer, (L.Flatten, L.Reshape)):
        return ((Kind.RESHAPE if isinstance(layer, L.Reshape) else Kind.FLATTEN,
                 ops.ReshapeOperation(_reshape_target(node, L))),)
    elif isinstance(layer, L.ZeroPadding2D):
        return ((Kind.ZERO_PADDING, ops.ZeroPaddingOperation(layer.padding)),)
    elif isinstance(layer, L.Concatenate):
        return ((Kind.CONCATENATE, ops.ConcatenateOperation(layer.axis)),)
    elif isinstance(layer, L.LSTM):
        return ((Kind.LSTM, _lstm_operation(node, graph, dtype, method)),)
    elif isinstance(layer, L.ReLU):
        if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            raise _unsupported(layer, "ReLU with max_value/negative_slope/threshold", method)
        return ((Kind.ACTIVATION, _activation_operation(layer, "relu", False, method)),)
    elif isinstance(layer, (L.Activation, L.Softmax)):
        return ((Kind.ACTIVATION, _activation_operation(layer, _activation_name(layer), False, method)),)
    elif keras_graph.is_model(layer):
        raise _unsupported(layer, "nested models are not supported; rebuild the model flat "
                                  "(e.g. keras.Model(inner.input, outer_layers(inner.output)))", method)
    else:
        raise _unsupported(layer, "layer type not supported by the native engine", method)
    activation = _activation_name(layer)
    if activation in (None, "linear"):
        return (linear,)
    return (linear, (Kind.ACTIVATION, _activation_operation(layer, activation, True, method)))


# --- graph -> steps --------------------------------------------------------------------------

def _output_nonnegative(kind: Kind, operation, inputs_nonnegative: tuple) -> bool:
    if kind is Kind.ACTIVATION:
        return operation.is_relu
    return kind.keeps_nonnegative and bool(inputs_nonnegative) and all(inputs_nonnegative)


def _output_layer_step(steps: list, index: int) -> int | None:
    """Index of the Dense/Conv2D step whose output reaches the model output unchanged (through
    Flatten/Reshape or linear activations), or None if the output comes from another kind of layer."""
    while True:
        step = steps[index]
        if step.kind.has_kernel:
            return index
        unchanged = step.kind.only_reshapes or (step.kind is Kind.ACTIVATION and step.operation.name == "linear")
        if not unchanged or len(step.inputs) != 1:
            return None
        index = step.inputs[0]


def canonicalize(graph: ModelGraph, dtype: tf.DType, method: str = "this method") -> CanonicalModel:
    """Canonical steps for a model graph.

    Parameters
    ----------
    graph : ModelGraph
        From :func:`keras_xai.graph.read_model`.
    dtype : tf.DType
        Compute dtype; weights are cast to it when read.
    method : str
        Analyzer name, for error messages.

    Raises
    ------
    UnsupportedLayerError
        For a layer the engine cannot handle (message names the layer, its type, the method and
        the supported types).
    """
    steps = []
    node_to_step = {}
    nonnegative = {}  # step index -> output provably >= 0
    fed_by_input = {}  # step index -> output is the input, only rearranged
    for node in graph.nodes:
        if node.index == 0:
            steps.append(Step(0, node.name, node.layer, Kind.INPUT, None, (), node.output_shape))
            node_to_step[0], nonnegative[0], fed_by_input[0] = 0, False, True
            continue
        pairs = _layer_operations(node, graph, dtype, method)
        inputs = tuple(node_to_step[i] for i in node.inputs)
        for position, (kind, operation) in enumerate(pairs):
            is_last = position == len(pairs) - 1
            index = len(steps)
            inputs_nonnegative = tuple(nonnegative[i] for i in inputs)
            steps.append(Step(
                index=index,
                name=node.name if is_last else f"{node.name}/linear",
                layer=node.layer,
                kind=kind,
                operation=operation,
                inputs=inputs,
                output_shape=node.output_shape,
                reported=is_last,
                first_layer=kind.has_kernel and all(fed_by_input[i] for i in inputs),
                inputs_nonnegative=inputs_nonnegative,
            ))
            nonnegative[index] = _output_nonnegative(kind, operation, inputs_nonnegative)
            fed_by_input[index] = kind.only_rearranges and all(fed_by_input[i] for i in inputs)
            inputs = (index,)
        node_to_step[node.index] = len(steps) - 1
    final = _output_layer_step(steps, node_to_step[graph.output_index])
    if final is not None:
        steps[final] = replace(steps[final], output_layer=True)
    layer_steps = {step.name: step.index for step in steps if step.reported}
    for alias, node_index in graph.aliases.items():
        layer_steps.setdefault(alias, node_to_step[node_index])
    return CanonicalModel(tuple(steps), node_to_step[graph.output_index], layer_steps)


def check_spatial_sizes(model: CanonicalModel, sample_shape: tuple) -> None:
    """Raise ValueError if an input of ``sample_shape`` (height, width, channels) is too small for a
    convolution or pooling window of a model whose input size is not fixed (``Input((None, None, 3))``).

    TensorFlow would fail inside the pass with a message naming its op, not the layer.
    """
    sizes = {0: tuple(sample_shape[:2])}  # step -> (height, width) while the tensors are images
    for step in model.steps[1:]:
        inputs = [sizes.get(i) for i in step.inputs]
        if step.kind.ends_image or None in inputs or not inputs:
            continue
        if not hasattr(step.operation, "output_size"):
            sizes[step.index] = inputs[0]
            continue
        sizes[step.index] = step.operation.output_size(*inputs[0])
        if min(sizes[step.index]) < 1:
            raise ValueError(
                f"an input of size {tuple(sample_shape[:2])} is too small for layer {step.describe()}: it receives "
                f"{inputs[0][0]}x{inputs[0][1]} and its window does not fit; give larger inputs")
