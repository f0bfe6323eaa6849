r"""LRP for Keras' ``LSTM`` layers (Arras et al., "Explaining Recurrent Neural Network Predictions in
Sentiment Analysis", WASSA 2017; "Explaining and Interpreting LSTMs", 2019), "signal take all".

With the layer's equations (:mod:`keras_xai.lstm_operation`): relevance at ``h_t`` goes wholly to ``c_t``
(the gate ``o_t`` gets none); the sum ``c_t = f_t c_{t-1} + i_t g_t`` is split by the method's rule between
its two terms, each of which passes its share to its signal (``c_{t-1}``, ``g_t``), not to its gate;
``g_t``'s share goes through the tanh unchanged to the linear map ``z^g_t = x_t W^g + h_{t-1} U^g + b^g``,
which the method's rule splits between ``x_t`` and ``h_{t-1}``. The rules are the engine's own
(:class:`~keras_xai.rules.EpsilonRule`, :class:`~keras_xai.rules.ZRule`, ...), applied to those two small
linear steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_xai.canonize import Step
from keras_xai.kinds import Kind
from keras_xai.modifiers import KEEP
from keras_xai.operations import LinearOperation, SumOperation
from keras_xai.rules import NO_CONTEXT, Rule


class _GateInput(LinearOperation):
    """``z^g_t = x_t W^g + h_{t-1} U^g + b^g``: the linear map into the LSTM's cell input, two inputs."""

    def __init__(self, kernel, recurrent_kernel, bias):
        self._kernels = (kernel, recurrent_kernel)
        self._bias = bias

    def forward(self, inputs, weights=KEEP, bias=KEEP):
        z = tf.matmul(inputs[0], weights(self._kernels[0])) + tf.matmul(inputs[1], weights(self._kernels[1]))
        if self._bias is None or bias is None:
            return z
        return z + bias(self._bias)

    def transpose(self, cotangent, inputs, weights=KEEP):
        return [tf.matmul(cotangent, weights(kernel), transpose_b=True) for kernel in self._kernels]


def _inner_step(name: str, kind: Kind, operation, shape) -> Step:
    """A two-input step inside the LSTM, for the linear rule (which only reads its kind and operation)."""
    return Step(1, name, None, kind, operation, (0, 0), tuple(shape))


@dataclass(frozen=True)
class LSTMRule(Rule):
    """LRP for an LSTM layer (see the module docstring): ``linear_rule`` (e.g. ``EpsilonRule()``) on the
    cell-state sum and on the cell input's linear map, the gates' products passed to their signals."""

    linear_rule: Rule
    needs_linear = False

    def unsupported_reason(self, step):
        if step.kind is not Kind.LSTM:
            return f"{type(self).__name__} applies to LSTM layers"
        probe = _inner_step("cell input", Kind.DENSE, _GateInput(None, None, None), ())
        reason = self.linear_rule.unsupported_reason(probe)
        return None if reason is None else f"its linear rule {self.linear_rule!r}: {reason}"

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        operation = step.operation
        states = operation.states(inputs[0])
        kernel, recurrent_kernel, bias = operation.parameters()
        cell_input = _GateInput(operation.block(kernel, "g"), operation.block(recurrent_kernel, "g"),
                                None if bias is None else operation.block(bias, "g"))
        cell_input_step = _inner_step(f"{step.name}/cell input", Kind.DENSE, cell_input, states.h[0].shape)
        cell_sum_step = _inner_step(f"{step.name}/cell sum", Kind.ADD, SumOperation(), states.h[0].shape)
        steps = len(states.h)
        from_above = operation.per_time_step(relevance, steps)
        at_x = [None] * steps
        at_h = None  # relevance at h_t from step t + 1's cell input
        at_c = None  # relevance at c_t from step t + 1's cell-state sum
        for t in reversed(range(steps)):
            parts = [r for r in (from_above[t], at_h) if r is not None]
            on_h = parts[0] if len(parts) == 1 else parts[0] + parts[1]
            on_c = on_h if at_c is None else on_h + at_c  # h_t = o_t tanh(c_t): all of it to c_t
            gate = states.gates[t]
            kept, written = self.linear_rule(
                cell_sum_step, [gate["f"] * states.c_before(t), gate["i"] * gate["g"]], states.c[t], on_c)
            at_c = kept  # to c_{t-1}; f_t gets none
            z_g = operation.block(states.z[t], "g")
            at_x[t], at_h = self.linear_rule(cell_input_step, [states.x[t], states.h_before(t)], z_g, written)
        return [tf.stack(at_x, axis=1)]
