"""Pure TensorFlow versions of the Keras layers the native engine supports.

An :class:`Operation` computes one layer's output from its inputs with plain TF ops (so any float
dtype works, Keras' autocasting does not interfere) and knows its vector-Jacobian product, written
with the same TF ops TensorFlow's own gradient registry uses, so that the gradient the engine
propagates equals ``tf.GradientTape``'s bit for bit.

A :class:`LinearOperation` (Dense, Conv2D, the affine form of BatchNormalization, Add, average
pooling) is ``z = W x + b``. LRP-type rules evaluate it with modified weights (a
:class:`~keras_xai.modifiers.WeightModifier`: ``W+``, ``W-``, ``W**2``, ones, ``W + gamma W+``) and
with or without (part of) the bias, and multiply by the transposed modified matrix; both operations
are offered here so that a rule never needs to know which layer it is working on.
"""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

from keras_xai.modifiers import KEEP, WeightModifier

def times(tensor: tf.Tensor, factor) -> tf.Tensor:
    """``tensor * factor``, without the multiplication when ``factor`` is the number 1."""
    if isinstance(factor, (int, float)) and factor == 1:
        return tensor
    return tensor * factor


def _read(variable, dtype: tf.DType) -> tf.Tensor:
    # Reading the live variable (not a snapshot) keeps analyzers valid when weights change later.
    return tf.cast(variable, dtype)


class Operation:
    """One layer as a pure function ``forward(inputs) -> output`` with its VJP.

    Attributes
    ----------
    is_linear : bool
        True for :class:`LinearOperation` subclasses.
    """

    is_linear = False

    def forward(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        """Compute the layer's output from the list of its input tensors."""
        raise NotImplementedError

    def vjp(self, inputs: Sequence[tf.Tensor], output: tf.Tensor, cotangent: tf.Tensor) -> list:
        """Vector-Jacobian product: ``[(d output / d input_i)^T cotangent for each input i]``."""
        raise NotImplementedError


class LinearOperation(Operation):
    """An operation ``z = sum_i W_i x_i + b`` whose weights a rule may modify.

    Subclasses implement :meth:`forward` and :meth:`transpose` with a weight modifier (and
    :meth:`forward` with a bias modifier, None for no bias), and (if they have parameters)
    :meth:`_read_parameter`; those with implicit weights say in :meth:`supports` which modifiers
    they can apply.
    """

    is_linear = True

    def forward(self, inputs, weights: WeightModifier = KEEP, bias: WeightModifier | None = KEEP) -> tf.Tensor:
        """``z = W' x + b'`` with ``W' = weights(W)`` and ``b' = bias(b)`` (no bias if None)."""
        raise NotImplementedError

    def transpose(self, cotangent: tf.Tensor, inputs, weights: WeightModifier = KEEP) -> list:
        """``[W_i'^T cotangent for each input i]``; ``inputs`` give the shapes only."""
        raise NotImplementedError

    def supports(self, modifier: WeightModifier) -> bool:
        """Whether this layer can apply ``modifier`` (layers with explicit weights: always)."""
        return True

    def vjp(self, inputs, output, cotangent) -> list:
        return self.transpose(cotangent, inputs, KEEP)

    def _read_parameter(self, name: str) -> tf.Tensor:
        """The current value of parameter "weights" or "bias" in the compute dtype."""
        raise NotImplementedError

    def parameter(self, name: str, modifier: WeightModifier | None) -> tf.Tensor | None:
        """Parameter "weights" or "bias" with ``modifier`` applied (None: no parameter).

        Inside one traced graph each (parameter, modifier) is built once: rules ask for ``W+`` several
        times, and fewer ops make tracing faster.
        """
        if modifier is None:
            return None
        if tf.executing_eagerly():
            return modifier(self._read_parameter(name))
        graph = tf.compat.v1.get_default_graph()
        if getattr(self, "_cache_graph", None) is not graph:
            self._cache_graph, self._cache = graph, {}
        if (name, modifier) not in self._cache:
            if (name, KEEP) not in self._cache:
                self._cache[(name, KEEP)] = self._read_parameter(name)
            self._cache[(name, modifier)] = modifier(self._cache[(name, KEEP)])
        return self._cache[(name, modifier)]


class DenseOperation(LinearOperation):
    """Keras ``Dense`` without its activation: ``z = x W + b`` on the last axis of ``x``."""

    def __init__(self, kernel, bias, dtype: tf.DType):
        self._kernel, self._bias, self._dtype = kernel, bias, dtype

    def _read_parameter(self, name):
        return _read(self._kernel if name == "weights" else self._bias, self._dtype)

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        x = inputs[0]
        kernel = self.parameter("weights", weights)
        if x.shape.rank == 2:
            z = tf.matmul(x, kernel)
        else:  # Keras' Dense on the last axis of a >2-D input
            z = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]])
        return self._add_bias(z, bias)

    def _add_bias(self, z, modifier):
        if self._bias is None or modifier is None:
            return z
        return tf.nn.bias_add(z, self.parameter("bias", modifier))

    def transpose(self, cotangent, inputs, weights=KEEP):
        return self.transpose_with_kernel(cotangent, inputs, self.parameter("weights", weights))

    def transpose_with_kernel(self, cotangent, inputs, kernel) -> list:
        """``[K^T cotangent]`` for a caller-given ``kernel`` shaped like the layer's (PatternNet's A).
        With the layer's kernel, the op ``tf.GradientTape`` runs: the gradient is the tape's bit for bit."""
        x = inputs[0]
        if x.shape.rank == 2:
            return [tf.matmul(cotangent, kernel, transpose_b=True)]
        flat = tf.reshape(cotangent, [-1, kernel.shape[-1]])
        return [tf.reshape(tf.matmul(flat, kernel, transpose_b=True), tf.shape(x))]

    def kernel_vjp(self, inputs, cotangent) -> tf.Tensor:
        """``sum over samples (and leading axes) of x_i * cotangent_j``, shaped (inputs, channels of
        ``cotangent``): the kernel gradient, or any per-unit weighted sum of the inputs."""
        x = inputs[0]
        flat_x = tf.reshape(x, [-1, x.shape[-1]])
        flat_c = tf.reshape(cotangent, [-1, cotangent.shape[-1]])
        return tf.matmul(flat_x, flat_c, transpose_a=True)


def window_output_size(size: int, window: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Output length of a sliding window along one axis (TensorFlow's VALID / SAME arithmetic)."""
    if padding == "SAME":
        return -(-size // stride)
    return (size - (window - 1) * dilation - 1) // stride + 1


class WindowedOperation:
    """Mixin of the operations that slide a window over height and width (convolution, pooling)."""

    _dilations = (1, 1, 1, 1)  # pooling; Conv2D sets its own

    def output_size(self, height: int, width: int) -> tuple:
        """Spatial output size for a concrete input size (<= 0 where the window does not fit)."""
        window = self._window_shape()
        return tuple(window_output_size(size, window[axis], self._strides[axis + 1], self._padding,
                                        self._dilations[axis + 1])
                     for axis, size in enumerate((height, width)))

    def _window_shape(self) -> tuple:
        return tuple(self._ksize[1:3])


class Conv2DOperation(WindowedOperation, LinearOperation):
    """Keras ``Conv2D`` (channels last, groups 1) without its activation."""

    def _window_shape(self):
        return tuple(self._kernel.shape[:2])

    def __init__(self, kernel, bias, strides, padding: str, dilations, dtype: tf.DType):
        self._kernel, self._bias, self._dtype = kernel, bias, dtype
        self._strides = [1, *strides, 1]
        self._padding = padding.upper()
        self._dilations = [1, *dilations, 1]

    def _read_parameter(self, name):
        return _read(self._kernel if name == "weights" else self._bias, self._dtype)

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        kernel = self.parameter("weights", weights)
        z = tf.nn.conv2d(inputs[0], kernel, self._strides, self._padding, dilations=self._dilations)
        if self._bias is None or bias is None:
            return z
        return tf.nn.bias_add(z, self.parameter("bias", bias))

    def transpose(self, cotangent, inputs, weights=KEEP):
        kernel = self.parameter("weights", weights)
        # The op TensorFlow registers as Conv2D's gradient.
        return [
            tf.nn.conv2d_transpose(
                cotangent, kernel, tf.shape(inputs[0]), self._strides, self._padding,
                dilations=self._dilations,
            )
        ]

    def transpose_with_kernel(self, cotangent, inputs, kernel) -> list:
        """``[K^T cotangent]`` for a caller-given ``kernel`` shaped like the layer's (PatternNet's A)."""
        return [
            tf.nn.conv2d_transpose(
                cotangent, kernel, tf.shape(inputs[0]), self._strides, self._padding,
                dilations=self._dilations,
            )
        ]

    def kernel_vjp(self, inputs, cotangent) -> tf.Tensor:
        """``sum over samples and positions of patch_i * cotangent_j``, shaped
        (kh, kw, in channels, channels of ``cotangent``): the kernel gradient (TensorFlow's op),
        or any per-unit weighted sum of the input patches without extracting them."""
        kernel_shape = self._kernel.shape
        return tf.raw_ops.Conv2DBackpropFilter(
            input=inputs[0], filter_sizes=[kernel_shape[0], kernel_shape[1], kernel_shape[2], cotangent.shape[-1]],
            out_backprop=cotangent, strides=self._strides, padding=self._padding, dilations=self._dilations,
        )


class AffineOperation(LinearOperation):
    """Per-channel affine map ``z = k * x + c`` (BatchNormalization in inference mode).

    A diagonal linear layer: its "weights" are the per-channel scales ``k``.
    """

    def __init__(self, scale: Callable[[], tf.Tensor], offset: Callable[[], tf.Tensor]):
        self._scale, self._offset = scale, offset

    def _read_parameter(self, name):
        return self._scale() if name == "weights" else self._offset()

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        z = inputs[0] * self.parameter("weights", weights)
        if bias is None:
            return z
        return z + self.parameter("bias", bias)

    def transpose(self, cotangent, inputs, weights=KEEP):
        return [cotangent * self.parameter("weights", weights)]


class SumOperation(LinearOperation):
    """``Add`` as a linear layer: ``z = sum_i I x_i`` with identity weights and no bias.

    A modifier turns the identity weights into ``f(1) I`` (``W+ = |W| = W**2 = ones = I``, ``W- = 0``).
    """

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        total = inputs[0]
        for x in inputs[1:]:  # Keras' Add sums left to right
            total = total + x
        return times(total, weights.at_one)

    def transpose(self, cotangent, inputs, weights=KEEP):
        if weights.at_one == 0:
            return [tf.zeros_like(x) for x in inputs]
        return [times(cotangent, weights.at_one) for _ in inputs]


class AveragePoolingOperation(WindowedOperation, LinearOperation):
    """Keras ``AveragePooling2D``: each output is the mean of its window (weights ``1/n``)."""

    def __init__(self, pool_size, strides, padding: str):
        self._ksize = [1, *pool_size, 1]
        self._strides = [1, *strides, 1]
        self._padding = padding.upper()
        self._window = pool_size[0] * pool_size[1]

    def supports(self, modifier):
        # With 'same' padding border windows hold fewer inputs: one factor only for degree 1.
        return modifier.degree == 1 or (modifier.degree is not None and self._padding == "VALID")

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        z = tf.nn.avg_pool2d(inputs[0], self._ksize, self._strides, self._padding)
        return times(z, weights.mean_factor(self._window))

    def transpose(self, cotangent, inputs, weights=KEEP):
        grad = tf.raw_ops.AvgPoolGrad(
            orig_input_shape=tf.shape(inputs[0]), grad=cotangent, ksize=self._ksize,
            strides=self._strides, padding=self._padding,
        )
        return [times(grad, weights.mean_factor(self._window))]


class GlobalAveragePoolingOperation(LinearOperation):
    """Keras ``GlobalAveragePooling2D``: mean over height and width (weights ``1/(h w)``)."""

    def __init__(self, keepdims: bool):
        self._keepdims = keepdims

    def supports(self, modifier):
        return modifier.degree is not None

    @staticmethod
    def _factor(inputs, modifier):
        if modifier.degree == 1:  # no need for the area
            return modifier.at_one
        return modifier.mean_factor(tf.cast(tf.shape(inputs[0])[1] * tf.shape(inputs[0])[2], inputs[0].dtype))

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        z = tf.reduce_mean(inputs[0], axis=[1, 2], keepdims=self._keepdims)
        return times(z, self._factor(inputs, weights))

    def transpose(self, cotangent, inputs, weights=KEEP):
        x = inputs[0]
        channels = tf.shape(x)[3]
        spread = tf.broadcast_to(tf.reshape(cotangent, [-1, 1, 1, channels]), tf.shape(x))
        area = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], x.dtype)
        grad = spread / area  # as TensorFlow's gradient of reduce_mean
        return [times(grad, self._factor(inputs, weights))]


class MaxPoolingOperation(WindowedOperation, Operation):
    """Keras ``MaxPooling2D``; its VJP routes the cotangent to each window's maximum."""

    def __init__(self, pool_size, strides, padding: str):
        self._ksize = [1, *pool_size, 1]
        self._strides = [1, *strides, 1]
        self._padding = padding.upper()

    def forward(self, inputs):
        return tf.nn.max_pool2d(inputs[0], self._ksize, self._strides, self._padding)

    def vjp(self, inputs, output, cotangent):
        return [
            tf.raw_ops.MaxPoolGrad(
                orig_input=inputs[0], orig_output=output, grad=cotangent, ksize=self._ksize,
                strides=self._strides, padding=self._padding,
            )
        ]

    def argmax(self, inputs) -> tf.Tensor:
        """Where each window's maximum is (flat index within the sample), for :meth:`vjp_from_argmax`."""
        return tf.nn.max_pool_with_argmax(inputs[0], self._ksize, self._strides, self._padding,
                                          include_batch_in_index=False)[1]

    def vjp_from_argmax(self, inputs, argmax, cotangent):
        """:meth:`vjp` from a known :meth:`argmax` (one row per row of the cotangent): the same numbers
        (the same first maximum of tied windows, the same order of additions where windows overlap),
        without MaxPoolGrad's search for the maxima; ``inputs`` give the shape only."""
        return [
            tf.raw_ops.MaxPoolGradWithArgmax(
                input=inputs[0], grad=cotangent, argmax=argmax, ksize=self._ksize, strides=self._strides,
                padding=self._padding, include_batch_in_index=False,
            )
        ]


class ReshapeOperation(Operation):
    """Keras ``Flatten`` and ``Reshape``: reshape every sample to ``target_shape``; the VJP reshapes back.

    ``target_shape`` should be the static output shape without the batch axis, so that shapes stay
    known inside the compiled pass.
    """

    def __init__(self, target_shape: tuple):
        self._target_shape = list(target_shape)

    def forward(self, inputs):
        return tf.reshape(inputs[0], [-1, *self._target_shape])

    def vjp(self, inputs, output, cotangent):
        return [tf.reshape(cotangent, tf.shape(inputs[0]))]


class ZeroPaddingOperation(Operation):
    """Keras ``ZeroPadding2D``; the VJP crops the padded border away."""

    def __init__(self, padding):
        (self._top, self._bottom), (self._left, self._right) = padding

    def output_size(self, height: int, width: int) -> tuple:
        return height + self._top + self._bottom, width + self._left + self._right

    def forward(self, inputs):
        paddings = [[0, 0], [self._top, self._bottom], [self._left, self._right], [0, 0]]
        return tf.pad(inputs[0], paddings)

    def vjp(self, inputs, output, cotangent):
        shape = tf.shape(inputs[0])
        return [cotangent[:, self._top:self._top + shape[1], self._left:self._left + shape[2], :]]


class ConcatenateOperation(Operation):
    """Keras ``Concatenate``; the VJP splits the cotangent back into the inputs' pieces."""

    def __init__(self, axis: int):
        self._axis = axis

    def forward(self, inputs):
        return tf.concat(list(inputs), axis=self._axis)

    def vjp(self, inputs, output, cotangent):
        sizes = [tf.shape(x)[self._axis] for x in inputs]
        return tf.split(cotangent, sizes, axis=self._axis)


class ActivationOperation(Operation):
    """An elementwise activation (``Activation`` / ``ReLU`` layers and fused activations).

    Parameters
    ----------
    name : str
        Keras name of the activation ("relu", "linear", "tanh", ...).
    fused : bool
        True when the activation was split off a ``Dense``/``Conv2D`` layer.
    """

    def __init__(self, name: str, function: Callable, fused: bool = False):
        self.name, self._function, self.fused = name, function, fused

    @property
    def is_relu(self) -> bool:
        return self.name == "relu"

    def forward(self, inputs):
        if self.name == "relu":
            return tf.nn.relu(inputs[0])
        if self.name == "linear":
            return inputs[0]
        return self._function(inputs[0])

    def vjp(self, inputs, output, cotangent):
        if self.name == "relu":
            return [tf.raw_ops.ReluGrad(gradients=cotangent, features=output)]
        if self.name == "linear":
            return [cotangent]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs[0])
            recomputed = self._function(inputs[0])
        return [tape.gradient(recomputed, inputs[0], output_gradients=cotangent)]
