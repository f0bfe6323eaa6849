r"""DeepLIFT-Rescale through Keras' ``LSTM`` layers, with the layer's equations of
:mod:`keras_xai.lstm_operation` evaluated on the input and on the reference (deltas :math:`\Delta`,
means :math:`\bar a = (a + a_0) / 2`):

- every gate activation :math:`y = \sigma(z)` and :math:`\tanh(c_t)`: Rescale,
  :math:`m_z = m_y \, \Delta y / \Delta z` (the derivative at the reference where
  :math:`|\Delta z| < 10^{-7}`, as for DeepLIFT's other activations);
- every product :math:`a b` (:math:`f_t c_{t-1}`, :math:`i_t g_t`, :math:`o_t \tanh c_t`): its delta
  :math:`\Delta(ab) = \bar b \, \Delta a + \bar a \, \Delta b` exactly (the interaction
  :math:`\Delta a \Delta b` split half and half, the two-player Shapley value), so
  :math:`m_a = \bar b \, m_{ab}` and :math:`m_b = \bar a \, m_{ab}`; the gates get their share, unlike
  LRP's signal-take-all;
- the linear maps :math:`z_t = x_t W + h_{t-1} U + b` and :math:`c_t` 's sum: the transpose.

Every step of this chain is exact for the deltas, so the contributions of the input sum to
:math:`f(x) - f(x_0)` (summation-to-delta) through any number of LSTM layers and time steps. The
multipliers of the positive and negative parts are not kept apart inside the layer (Rescale gives
both the same multiplier; deeplift's Linear rule separates them only by the sign of an input's own
delta), so the layer passes one multiplier to its input. RevealCancel and the paper's ablation are
defined for activations and linear layers only: they refuse LSTM layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_xai.kinds import Kind
from keras_xai.lstm_operation import GATES
from keras_xai.rules import NO_CONTEXT, Rule, reference_of


def _secant(function, z, z0, y, y0, near_zero: float):
    """``(y - y0) / (z - z0)`` for ``y = f(z)``, ``y0 = f(z0)`` (already computed), or ``f'(z0)`` where
    ``|z - z0| < near_zero``."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(z0)
        at_reference = function(z0)
    derivative = tape.gradient(at_reference, z0)  # elementwise functions: the diagonal of the Jacobian
    delta = z - z0
    small = tf.abs(delta) < near_zero
    return tf.where(small, derivative, (y - y0) / tf.where(small, tf.ones_like(delta), delta))


def _mean(a, a0):
    return 0.5 * (a + a0)


@dataclass(frozen=True)
class DeepLiftLSTMRule(Rule):
    """DeepLIFT-Rescale for an LSTM layer (see the module docstring); ``near_zero``: below it a
    delta counts as zero (deeplift's ``NEAR_ZERO_THRESHOLD``)."""

    near_zero: float
    needs_linear = False
    needs_reference = True

    def unsupported_reason(self, step):
        return None if step.kind is Kind.LSTM else f"{type(self).__name__} applies to LSTM layers"

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        reference = reference_of(self, context)
        positive, negative = relevance
        if positive is not negative:  # the multiplier of the output's own delta, as a linear layer's input gets
            delta = output - reference.output
            positive = tf.where(delta > 0, positive, tf.where(delta < 0, negative, _mean(positive, negative)))
        operation = step.operation
        kernel, recurrent_kernel, _ = operation.parameters()
        states, at_reference = operation.states(inputs[0]), operation.states(reference.inputs[0])
        activation, gate_activation = operation.activation, operation.recurrent_activation
        steps = len(states.h)
        from_above = operation.per_time_step(positive, steps)
        at_x = [None] * steps
        on_h_before, on_c_before = None, None  # multipliers from step t + 1
        for t in reversed(range(steps)):
            parts = [m for m in (from_above[t], on_h_before) if m is not None]
            on_h = parts[0] if len(parts) == 1 else parts[0] + parts[1]
            gate, gate0 = states.gates[t], at_reference.gates[t]
            c, c0 = states.c[t], at_reference.c[t]
            # h_t = o_t tanh(c_t)
            squashed, squashed0 = activation(c), activation(c0)
            on_o = on_h * _mean(squashed, squashed0)
            on_c = on_h * _mean(gate["o"], gate0["o"]) * _secant(activation, c, c0, squashed, squashed0,
                                                                 self.near_zero)
            if on_c_before is not None:
                on_c = on_c + on_c_before
            # c_t = f_t c_{t-1} + i_t g_t
            on_f = on_c * _mean(states.c_before(t), at_reference.c_before(t))
            on_i = on_c * _mean(gate["g"], gate0["g"])
            on_g = on_c * _mean(gate["i"], gate0["i"])
            on_c_before = on_c * _mean(gate["f"], gate0["f"])
            z, z0 = tf.split(states.z[t], 4, axis=1), tf.split(at_reference.z[t], 4, axis=1)
            functions = (gate_activation, gate_activation, activation, gate_activation)
            on_z = tf.concat([m * _secant(function, a, a0, gate[name], gate0[name], self.near_zero)
                              for m, function, a, a0, name in zip((on_i, on_f, on_g, on_o), functions, z, z0, GATES)],
                             axis=1)
            at_x[t] = tf.matmul(on_z, kernel, transpose_b=True)
            on_h_before = tf.matmul(on_z, recurrent_kernel, transpose_b=True)
        multipliers = tf.stack(at_x, axis=1)
        return [(multipliers, multipliers)]
