"""What the deeplift worker adds to deeplift 0.6.13 (imported in the worker process only, after
:func:`keras_xai.engines.deeplift_worker_main.patch_deeplift` made deeplift run on ``tf.compat.v1``).

- layers deeplift's converter lacks: :class:`AddAsLinear` (``Add`` as a linear layer with identity
  weights, deeplift's Dense rule), :class:`GlobalAvgPool2D`, :class:`ZeroPadding2D` (the authors of
  "When Explanations Lie" added the same three in their ``deeplift_resnet.py``);
- the paper's ablation of the linear rule (:class:`AblationDense`, :class:`AblationConv2D`,
  :class:`AblationBatchNormalization`, ``AddAsLinear(ablation=True)``), "When Explanations Lie"
  eq. 13 and the paragraph after it: "If the intermixing is removed by only considering W+ for the
  positive rule and W- for the negative rule, the two matrix chains become decoupled and
  converge". For every input unit of a linear layer, whatever the sign of its difference from the
  reference, the positive multiplier is ``m_in+ = W+^T m_out+`` and the negative one
  ``m_in- = W-^T m_out-`` (``W+ = max(W, 0)``, ``W- = min(W, 0)``; BatchNorm with the per-channel
  scale ``k = gamma / sqrt(var + eps)``: ``k+ m_out+`` and ``k- m_out-``; ``Add`` with identity
  weights, ``W+ = I``, ``W- = 0``: ``m_out+`` and 0). The positive chain is a product of
  non-negative matrices, the negative one of non-positive matrices ("the multiplication of two
  non-positive matrices gives a non-negative matrix"). deeplift itself then gives the input the
  contributions ``m+ dx+ + m- dx-``; nonlinearities, pooling and the forward contributions are
  deeplift's. An earlier reading (``W+^T m+ + W-^T m-`` for inputs above their reference, half of it
  at the reference, nothing below it) was replaced: it leaves the chains coupled (``W-^T m-``
  mixes the negative chain into the positive one): on the MNIST appendix-D net its CSC at conv1
  was 0.79, about RevealCancel's, against 0.990 decoupled (as the paper reports);
- converters for these and for ``ReLU`` layers, linear activations, ``BatchNormalization`` without
  scale or center and ``Concatenate`` on a negative axis;
- max pooling's contributions are the difference from the reference split by sign (deeplift returns
  zeros there, assuming a linear layer follows, which made every layer between a max pooling and
  the next linear layer report zero contributions).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

import deeplift.util
from deeplift import layers
from deeplift.conversion import kerasapi_conversion as kc
from deeplift.layers import helper_functions as hf
from deeplift.layers.core import DenseMxtsMode, ListInputMixin, Node, SingleInputMixin

tf1 = tf.compat.v1


# --- one graph constant per weight array -------------------------------------------------------

class GraphConstant:
    """A weight array that becomes one graph constant per graph, however often deeplift uses it.

    deeplift keeps kernels as NumPy arrays, and every use (forward pass, positive and negative
    contributions, multipliers: about 20 per Dense layer) embedded a new copy of the array in the
    graph; for the appendix-D net's 32 MB ``fc5`` kernel that made building the graph and its first
    run take about a minute. The array keeps its NumPy face (``shape``, ``T``, indexing).
    """

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float32)
        self._tensors = {}
        self._transposed = None

    @property
    def shape(self):
        return self.array.shape

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def T(self):  # noqa: N802 (NumPy's name)
        if self._transposed is None:
            self._transposed = GraphConstant(self.array.T)
        return self._transposed

    def __getitem__(self, key):
        return self.array[key]

    def __array__(self, dtype=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def tensor(self):
        graph = tf1.get_default_graph()
        if graph not in self._tensors:
            self._tensors[graph] = tf1.constant(self.array)
        return self._tensors[graph]


def _convert_graph_constant(value, dtype=None, name=None, as_ref=False):
    tensor = value.tensor()
    if dtype is not None and tf1.as_dtype(dtype) != tensor.dtype:
        tensor = tf1.cast(tensor, dtype)
    return tensor


tf1.register_tensor_conversion_function(GraphConstant, _convert_graph_constant)


def cache_kernel(layer):
    """Give a converted Dense/Conv layer a :class:`GraphConstant` kernel."""
    layer.kernel = GraphConstant(layer.kernel)
    return layer


# --- layers deeplift lacks -----------------------------------------------------------------------

class AddAsLinear(ListInputMixin, Node):
    """``sum_k x_k`` treated like deeplift's Dense layer with weights 1 for every input; with
    ``ablation`` every input gets the positive multiplier ``m_out+`` and the negative one 0 (``W+ = I``,
    ``W- = 0``; see the module docstring)."""

    def __init__(self, ablation: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.ablation = ablation

    def _compute_shape(self, input_shape):
        return input_shape[0]

    def _build_activation_vars(self, input_act_vars):
        return tf1.add_n(input_act_vars)

    def _build_pos_and_neg_contribs(self):
        differences = self._get_input_diff_from_reference_vars()
        positive = tf1.add_n([d * hf.gt_mask(d, 0.0) for d in differences])
        negative = tf1.add_n([d * hf.lt_mask(d, 0.0) for d in differences])
        return positive, negative

    def _get_mxts_increments_for_inputs(self):
        positive, negative = self.get_pos_mxts(), self.get_neg_mxts()
        differences = self._get_input_diff_from_reference_vars()
        if self.ablation:
            # Identity weights: W+ = I, W- = 0, so every input gets (m+, 0) (decoupled chains).
            return [positive for _ in differences], [tf1.zeros_like(positive) for _ in differences]
        increments = []
        for difference in differences:
            above, below, at = hf.gt_mask(difference, 0.0), hf.lt_mask(difference, 0.0), hf.eq_mask(difference, 0.0)
            increments.append(above * positive + below * negative + at * 0.5 * (positive + negative))
        return increments, increments


class GlobalAvgPool2D(SingleInputMixin, Node):
    """Mean over the two spatial axes (channels last); contributions and multipliers per sign."""

    def _compute_shape(self, input_shape):
        return [None, input_shape[-1]]

    def _build_activation_vars(self, input_act_vars):
        return tf1.reduce_mean(input_act_vars, axis=(1, 2))

    def _build_pos_and_neg_contribs(self):
        positive, negative = self._get_input_pos_and_neg_contribs()
        return self._build_activation_vars(positive), self._build_activation_vars(negative)

    def _spread(self, multipliers):
        shape = self._get_input_activation_vars().get_shape().as_list()
        return tf1.ones_like(self._get_input_activation_vars()) * multipliers[:, None, None, :] / float(shape[1] * shape[2])

    def _get_mxts_increments_for_inputs(self):
        return self._spread(self.get_pos_mxts()), self._spread(self.get_neg_mxts())


class ZeroPadding2D(SingleInputMixin, Node):
    """Zero padding of the two spatial axes (channels last)."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = [[int(a), int(b)] for a, b in padding]

    def _compute_shape(self, input_shape):
        shape = list(input_shape)
        for axis, (before, after) in zip((1, 2), self.padding):
            if shape[axis] is not None:
                shape[axis] += before + after
        return shape

    def _build_activation_vars(self, input_act_vars):
        return tf1.pad(input_act_vars, [[0, 0], *self.padding, [0, 0]])

    def _build_pos_and_neg_contribs(self):
        positive, negative = self._get_input_pos_and_neg_contribs()
        return self._build_activation_vars(positive), self._build_activation_vars(negative)

    def _crop(self, multipliers):
        shape = self._get_input_activation_vars().get_shape().as_list()
        (top, _), (left, _) = self.padding
        return multipliers[:, top:top + shape[1], left:left + shape[2], :]

    def _get_mxts_increments_for_inputs(self):
        return self._crop(self.get_pos_mxts()), self._crop(self.get_neg_mxts())


class Concat(layers.core.Concat):
    """deeplift's Concat with a negative axis (Keras' default -1) made positive."""

    def _compute_shape(self, input_shape):
        rank = len(self.inputs[0].get_shape())
        if self.axis < 0:
            self.axis += rank
        return super()._compute_shape(input_shape)


def _maxpool_contribs(self):
    difference = self._get_diff_from_reference_vars()
    return difference * hf.gt_mask(difference, 0.0), difference * hf.lt_mask(difference, 0.0)


def patch_max_pooling_contribs() -> None:
    """Max pooling reports its difference from the reference, split by sign, as contributions."""
    for cls in (layers.pooling.MaxPool2D, layers.pooling.MaxPool1D, layers.pooling.GlobalMaxPool1D):
        cls._build_pos_and_neg_contribs = _maxpool_contribs


# --- the ablation of the linear rule ---------------------------------------------------------------
# Paper eq. 13 with decoupled chains (see the module docstring): for every input unit, whatever the
# sign of its difference from the reference, m_in+ = W+^T m_out+ and m_in- = W-^T m_out-.

def _positive_part(weights):
    return weights * hf.gt_mask(weights, 0.0)


def _negative_part(weights):
    return weights * hf.lt_mask(weights, 0.0)


class AblationDense(layers.core.Dense):
    """Dense layer of the ablation: ``(W+^T m+, W-^T m-)`` for every input (decoupled chains)."""

    def _get_mxts_increments_for_inputs(self):
        kernel_t = tf1.convert_to_tensor(self.kernel.T)
        positive = tf1.matmul(self.get_pos_mxts(), _positive_part(kernel_t))
        negative = tf1.matmul(self.get_neg_mxts(), _negative_part(kernel_t))
        return positive, negative


class AblationConv2D(layers.convolutional.Conv2D):
    """Conv2D of the ablation: ``(W+^T m+, W-^T m-)`` (transposed convolutions) for every input."""

    def _get_mxts_increments_for_inputs(self):
        if self.data_format != "channels_last":
            raise NotImplementedError("the DeepLIFT ablation supports channels_last convolutions only")
        output_shape = tf1.shape(self.inputs.get_activation_vars())
        strides = [1] + list(self.strides) + [1]

        def transpose(multipliers, kernel):
            return tf1.nn.conv2d_transpose(value=multipliers, filter=kernel, output_shape=output_shape,
                                           padding=self.padding, strides=strides)

        kernel = tf1.convert_to_tensor(self.kernel)
        return (transpose(self.get_pos_mxts(), _positive_part(kernel)),
                transpose(self.get_neg_mxts(), _negative_part(kernel)))


class AblationBatchNormalization(layers.normalization.BatchNormalization):
    """BatchNormalization of the ablation: ``(k+ m+, k- m-)`` with ``k = gamma / sqrt(var + eps)``."""

    def _get_mxts_increments_for_inputs(self):
        scale = self.reshaped_gamma / tf1.sqrt(self.reshaped_var + self.epsilon)
        return self.get_pos_mxts() * _positive_part(scale), self.get_neg_mxts() * _negative_part(scale)


# --- converters ------------------------------------------------------------------------------------

def _weights_by_name(config) -> dict:
    return dict(zip(config["weight_names"], config["weights"]))


def _activation_layers(config, name, verbose, nonlinear_mxts_mode):
    activation = (config.get("activation") or "linear").lower()
    if activation == "linear":
        return []
    return kc.activation_to_conversion_function(activation)(
        config=config, name=name, verbose=verbose, nonlinear_mxts_mode=nonlinear_mxts_mode)


def converters(ablation: bool) -> dict:
    """``custom_conversion_funcs`` for deeplift's functional converter (keyed by Keras class name)."""

    def add(config, name, verbose, **kwargs):
        return [AddAsLinear(ablation=ablation, name=name, verbose=verbose)]

    def global_average_pooling(config, name, verbose, **kwargs):
        if config.get("keepdims"):
            raise NotImplementedError(f"layer {config['name']!r}: GlobalAveragePooling2D(keepdims=True) is not supported")
        if config.get("data_format", "channels_last") != "channels_last":
            raise NotImplementedError(f"layer {config['name']!r}: only channels_last is supported")
        return [GlobalAvgPool2D(name=name, verbose=verbose)]

    def zero_padding(config, name, verbose, **kwargs):
        if config.get("data_format", "channels_last") != "channels_last":
            raise NotImplementedError(f"layer {config['name']!r}: only channels_last is supported")
        return [ZeroPadding2D(config["padding"], name=name, verbose=verbose)]

    def relu(config, name, verbose, nonlinear_mxts_mode, **kwargs):
        return [layers.activations.ReLU(name=name, verbose=verbose, nonlinear_mxts_mode=nonlinear_mxts_mode)]

    def activation(config, name, verbose, nonlinear_mxts_mode, **kwargs):
        converted = _activation_layers(config, name, verbose, nonlinear_mxts_mode)
        return converted or [layers.core.NoOp(name=name, verbose=verbose)]

    def concatenate(config, name, verbose, **kwargs):
        return [Concat(axis=config["axis"], name=name, verbose=verbose)]

    def batch_norm(config, name, verbose, **kwargs):
        weights = {key.split("/")[-1].split(":")[0]: value for key, value in _weights_by_name(config).items()}
        mean = weights["moving_mean"]
        axis = config["axis"][0] if isinstance(config["axis"], (list, tuple)) else config["axis"]
        cls = AblationBatchNormalization if ablation else layers.normalization.BatchNormalization
        return [cls(name=name, verbose=verbose, gamma=weights.get("gamma", np.ones_like(mean)),
                    beta=weights.get("beta", np.zeros_like(mean)), axis=axis, mean=mean,
                    var=weights["moving_variance"], epsilon=config["epsilon"])]

    dense_class = AblationDense if ablation else layers.core.Dense
    conv_class = AblationConv2D if ablation else layers.convolutional.Conv2D

    def dense(config, name, verbose, nonlinear_mxts_mode, dense_mxts_mode=DenseMxtsMode.Linear, **kwargs):
        weights = config["weights"]
        after = _activation_layers(config, name, verbose, nonlinear_mxts_mode)
        linear = dense_class(name=("preact_" if after else "") + name, verbose=verbose, kernel=weights[0],
                             bias=weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[-1]),
                             dense_mxts_mode=dense_mxts_mode)
        return deeplift.util.connect_list_of_layers([cache_kernel(linear)] + after)

    def conv2d(config, name, verbose, nonlinear_mxts_mode, conv_mxts_mode, **kwargs):
        weights = config["weights"]
        if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
            raise NotImplementedError(f"layer {config['name']!r}: dilated convolutions are not supported")
        after = _activation_layers(config, name, verbose, nonlinear_mxts_mode)
        linear = conv_class(name=("preact_" if after else "") + name, verbose=verbose, kernel=weights[0],
                            bias=weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[-1]),
                            strides=config["strides"], padding=config["padding"].upper(),
                            data_format=config["data_format"], conv_mxts_mode=conv_mxts_mode)
        return deeplift.util.connect_list_of_layers([cache_kernel(linear)] + after)

    return {"Add": add, "GlobalAveragePooling2D": global_average_pooling, "ZeroPadding2D": zero_padding,
            "ReLU": relu, "Activation": activation, "Concatenate": concatenate, "BatchNormalization": batch_norm,
            "Dense": dense, "Conv2D": conv2d}
