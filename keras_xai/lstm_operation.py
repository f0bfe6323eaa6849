r"""Keras' ``LSTM`` as a pure TF operation for the native engine, unrolled over time.

In Keras' gate order (i, f, g, o) and with the layer's activations (tanh and sigmoid by default)::

    z_t = x_t W + h_{t-1} U + b            (4 blocks of units)
    i_t, f_t, o_t = sigma(z_t^i), sigma(z_t^f), sigma(z_t^o)     g_t = tanh(z_t^g)
    c_t = f_t * c_{t-1} + i_t * g_t        h_t = o_t * tanh(c_t)       (h_0 = c_0 = 0)

Its VJP is TF's gradient of the unrolled pass (back-propagation through time); LRP for LSTMs is
:mod:`keras_xai.lstm_rule`.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_xai.operations import Operation

#: Keras' order of the four blocks of the kernel, recurrent kernel and bias.
GATES = ("i", "f", "g", "o")


@dataclass(frozen=True)
class LSTMStates:
    """Everything the forward pass computed, per time step (lists of ``T`` tensors of shape (rows, units),
    ``x`` of shape (rows, features)); ``h[t]`` / ``c[t]`` are the states after step ``t``, and
    ``h_before(t)`` / ``c_before(t)`` those it started from (zeros at ``t = 0``)."""

    x: list
    z: list  # the pre-activations of the four gates, (rows, 4 units)
    gates: list  # {"i", "f", "g", "o"} -> activation
    c: list
    h: list
    zeros: tf.Tensor

    def h_before(self, t: int) -> tf.Tensor:
        return self.h[t - 1] if t > 0 else self.zeros

    def c_before(self, t: int) -> tf.Tensor:
        return self.c[t - 1] if t > 0 else self.zeros


class LSTMOperation(Operation):
    """A Keras ``LSTM`` layer (not stateful, forwards in time, no mask) as a function of its input
    sequence (rows, T, features); its output is ``h`` at every step (``return_sequences``) or the last."""

    def __init__(self, kernel, recurrent_kernel, bias, units: int, return_sequences: bool,
                 activation, recurrent_activation, dtype: tf.DType):
        self._kernel, self._recurrent_kernel, self._bias = kernel, recurrent_kernel, bias
        self.units, self.return_sequences, self._dtype = units, return_sequences, dtype
        self.activation, self.recurrent_activation = activation, recurrent_activation  # tanh, sigmoid by default

    def parameters(self) -> tuple:
        """``(W, U, b)`` in the compute dtype (``b`` None without bias), read live."""
        def read(variable):
            return None if variable is None else tf.cast(variable, self._dtype)
        return read(self._kernel), read(self._recurrent_kernel), read(self._bias)

    def block(self, matrix: tf.Tensor, gate: str) -> tf.Tensor:
        """The columns (or entries, for the bias) of ``matrix`` that belong to ``gate``."""
        start = GATES.index(gate) * self.units
        return matrix[..., start:start + self.units]

    def states(self, x: tf.Tensor) -> LSTMStates:
        """The forward pass over the static number of time steps of ``x``, keeping every state."""
        kernel, recurrent_kernel, bias = self.parameters()
        steps = x.shape[1]
        zeros = tf.zeros(tf.stack([tf.shape(x)[0], self.units]), x.dtype)
        h, c = zeros, zeros
        xs, zs, gates, cs, hs = [], [], [], [], []
        for t in range(steps):
            x_t = x[:, t]
            z = tf.matmul(x_t, kernel) + tf.matmul(h, recurrent_kernel)
            if bias is not None:
                z = z + bias
            z_i, z_f, z_g, z_o = tf.split(z, 4, axis=1)
            gate = {"i": self.recurrent_activation(z_i), "f": self.recurrent_activation(z_f),
                    "g": self.activation(z_g), "o": self.recurrent_activation(z_o)}
            c = gate["f"] * c + gate["i"] * gate["g"]
            h = gate["o"] * self.activation(c)
            xs.append(x_t), zs.append(z), gates.append(gate), cs.append(c), hs.append(h)
        return LSTMStates(xs, zs, gates, cs, hs, zeros)

    def per_time_step(self, backward: tf.Tensor, steps: int) -> list:
        """A backward quantity at the output split into one per ``h_t`` (None where ``h_t`` is not output)."""
        if self.return_sequences:
            return tf.unstack(backward, axis=1)
        return [None] * (steps - 1) + [backward]

    def output_of(self, states: LSTMStates) -> tf.Tensor:
        return tf.stack(states.h, axis=1) if self.return_sequences else states.h[-1]

    def forward(self, inputs):
        return self.output_of(self.states(inputs[0]))

    def vjp(self, inputs, output, cotangent):
        # Back-propagation through time, by TF's own gradients of the unrolled pass.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs[0])
            recomputed = self.forward(inputs)
        return [tape.gradient(recomputed, inputs[0], output_gradients=cotangent)]
