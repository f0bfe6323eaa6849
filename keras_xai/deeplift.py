r"""DeepLIFT in the native engine (Shrikumar et al. 2017; "When Explanations Lie", eq. 13).

DeepLIFT explains ``f_k(x) - f_k(x0)`` for a reference input ``x0`` (zeros by default). Every layer
output carries a difference from its reference :math:`\Delta = y(x) - y(x_0)`, split into positive and
negative contributions (forward), and positive and negative multipliers :math:`m^+, m^-` (backward);
a layer's contribution to the target is :math:`m^+ \cdot c^+ + m^- \cdot c^-`. The rules are those of
the deeplift package 0.6.13 (``layers/core.py``, ``convolutional.py``, ``normalization.py``,
``activations.py``, ``pooling.py``) with the worker engine's additions
(:mod:`keras_xai.engines.deeplift_layers`):

- Dense, Conv2D (deeplift's "Linear" mode) and ``Add`` (identity weights): an input with
  :math:`\Delta > 0` gets :math:`W^{+T} m^+ + W^{-T} m^-`, one with :math:`\Delta < 0` gets
  :math:`W^{-T} m^+ + W^{+T} m^-`, one with :math:`\Delta = 0` gets :math:`W^T (m^+ + m^-) / 2`; its
  positive and negative multipliers are equal. Contributions:
  :math:`c^+ = W^+ \Delta^+ + W^- \Delta^-`, :math:`c^- = W^- \Delta^+ + W^+ \Delta^-`.
- BatchNormalization (per-channel scale :math:`k`): :math:`m^+_{in} = k^+ m^+ + k^- m^-`,
  :math:`m^-_{in} = k^- m^+ + k^+ m^-`; contributions scale the input's contributions likewise.
- Rescale at an activation: both multipliers times :math:`\Delta y / \Delta x`, or the gradient at
  the reference where :math:`|\Delta x| < 10^{-7}` (deeplift's ``NEAR_ZERO_THRESHOLD``; for sigmoid
  and tanh deeplift evaluates that gradient at the reference *output*, a slip not copied here).
- RevealCancel: :math:`c^+_{out} = \frac12 (f(x_0 + c^+) - f(x_0) + f(x_0 + c^- + c^+) - f(x_0 + c^-))`,
  :math:`c^-_{out}` likewise, :math:`m^\pm_{in} = m^\pm c^\pm_{out} / c^\pm_{in}` (near-zero
  contributions get deeplift's pseudocount of :math:`\pm 10^{-7}`). Linear activations pass both on.
- Max pooling, average pooling, GlobalAveragePooling2D, Flatten, Reshape, ZeroPadding2D,
  Concatenate: each multiplier with the layer's gradient (max pooling: deeplift's "gradient" mode,
  routed by the input's maxima); contributions through the layer itself (max pooling: the output's
  difference split by sign, as the worker engine does). Where a pooling window's maximum of the
  reference is elsewhere than that of the input, the gradient misses part of the difference and
  the contributions no longer sum to the delta exactly (in deeplift too).
- Keras ``LSTM`` layers (Rescale only): :mod:`keras_xai.lstm_deeplift`.
- ``deep_lift.ablation`` (the paper's ablation of eq. 13, section 5: "only considering W+ for the
  positive rule and W- for the negative rule, the two matrix chains become decoupled"): every input
  of a linear layer gets :math:`m^+_{in} = W^{+T} m^+` and :math:`m^-_{in} = W^{-T} m^-`, whatever
  the sign of its difference (BatchNorm: :math:`k^+ m^+`, :math:`k^- m^-`; Add, identity weights:
  :math:`m^+` and 0). The positive chain is a product of non-negative matrices, the negative one
  of non-positive matrices (two make a non-negative one), so both converge. Summation-to-delta
  does not hold for it. (An earlier reading kept :math:`W^{+T} m^+ + W^{-T} m^-` for inputs above
  their reference and dropped only the terms of inputs below it: the chains stay coupled, and on
  the MNIST appendix-D net its median CSC at conv1 was 0.79, like RevealCancel's; decoupled: 0.990.)

What the analyzer returns: :meth:`analyze` the contributions of the input (they sum to
``f_k(x) - f_k(x0)``; the same as ``engine="deeplift"``); :meth:`relevances` and
:meth:`propagate_from` the multiplier at every layer's output (the input's entry: its
contributions) — where the two multipliers differ, the one of the layer's own difference from the
reference (:math:`m^+` where :math:`\Delta > 0`, :math:`m^-` where :math:`\Delta < 0`, their mean at
0), the multiplier the linear rule gives a layer's input. ``propagate_from`` sets both multipliers
at the layer to the injected vector (the paper's CSC). :meth:`DeepLiftAnalyzer.contributions` and
:meth:`DeepLiftAnalyzer.propagate_contributions` return the contributions at every layer (the
``deeplift`` worker engine has the same four methods, with the same meaning).

Speed (the results differ from deeplift's by float rounding: up to 4e-6 of the largest value on the
appendix-D net, the tests allow 1e-4): the forward pass runs on the batch
and the reference together, a reference shared by all samples only once; each step's difference
from the reference, Rescale's factor and RevealCancel's ratios are computed once, in the forward state
(:class:`StepState`), and reused by the backward rules (Rescale's multipliers need no contributions
but the input's: none are traced); where the two multipliers
are the same tensor (the head, every Rescale multiplier, every input of a linear layer) rules
compute with one (``W+^T m + W-^T m = W^T m``); otherwise the linear rule needs two transposed
products, not four: ``W^T (m+ + m-)`` and ``|W|^T (m+ - m-)``. The contributions through Dense and
Conv2D come from two products as well, ``W d`` and ``|W| |d|``, not deeplift's four; that keeps the
exact zeros RevealCancel's pseudocount depends on (see :func:`_signed_contributions`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from keras_xai.analyzer import NativeAnalyzer, assign_rules
from keras_xai.analyzers import SELECTORS, Recipe, register
from keras_xai.engine import Engine, ReferencePass
from keras_xai.kinds import Kind
from keras_xai.modifiers import ABSOLUTE, KEEP, NEGATIVE, POSITIVE
from keras_xai.lstm_deeplift import DeepLiftLSTMRule
from keras_xai.rules import NO_CONTEXT, GradientRule, Rule, reference_of

#: deeplift.util.NEAR_ZERO_THRESHOLD: below it a difference counts as zero.
NEAR_ZERO = 1e-7
NONLINEAR_MODES = ("rescale", "reveal_cancel")


def split_by_sign(difference):
    """``(difference * [difference > 0], difference * [difference < 0])`` (deeplift's values; one op
    each instead of two)."""
    return tf.nn.relu(difference), tf.minimum(difference, 0)


def pseudocount_near_zero(tensor):
    """deeplift's ``pseudocount_near_zero``: values with ``|t| < 0.5e-7`` get ``+1e-7`` (``t >= 0``)
    or ``-1e-7`` added (the same numbers as deeplift's masked sum, with half the ops)."""
    shift = tf.where(tensor >= 0, tf.constant(NEAR_ZERO, tensor.dtype), tf.constant(-NEAR_ZERO, tensor.dtype))
    return tf.where(tf.abs(tensor) < 0.5 * NEAR_ZERO, tensor + shift, tensor)


def _same(pair) -> bool:
    return pair[0] is pair[1]


# --- the forward state: differences, contributions and activation factors of every step ---------

class StepState(NamedTuple):
    """DeepLIFT's forward state of a step's output. What the backward rules need is computed here
    once per pass (ops to trace and elementwise work: differences were computed up to three times,
    the activations' factors twice)."""

    positive: Optional[tf.Tensor]  # c+, the positive contributions (None where nothing needs them)
    negative: Optional[tf.Tensor]  # c-
    difference: tf.Tensor  # y(x) - y(x0)
    factor: Optional[tf.Tensor] = None  # Rescale at an activation: dy / dx
    # RevealCancel at an activation: (c+_out / c+_in, c-_out / c-_in), c_in after the pseudocount
    ratios: Optional[tuple] = None


def _difference(state, x, x0):
    """A step's ``y(x) - y(x0)``: from its :class:`StepState`, or computed (another pass's state)."""
    return state.difference if isinstance(state, StepState) else x - x0


def _reveal_cancel_contributions(function, reference_input, at_reference, positive, negative):
    """RevealCancel's split of an activation's difference (deeplift's order of additions), from the
    input's contributions after the pseudocount; ``at_reference`` is ``function(reference_input)``."""
    both_negative_first = function(reference_input + negative + positive)
    both_positive_first = function(reference_input + positive + negative)
    with_positive = function(reference_input + positive)
    with_negative = function(reference_input + negative)
    new_positive = 0.5 * ((with_positive - at_reference) + (both_negative_first - with_negative))
    new_negative = 0.5 * ((with_negative - at_reference) + (both_positive_first - with_positive))
    return new_positive, new_negative


def _rescale_factor(step, reference_input, reference_output, difference_in, difference_out):
    """``dy / dx``, or the gradient at the reference where ``|dx| < 1e-7``."""
    near = tf.abs(difference_in) < NEAR_ZERO
    gradient = step.operation.vjp([reference_input], reference_output, tf.ones_like(reference_output))[0]
    return tf.where(near, gradient, difference_out / tf.where(near, tf.ones((), difference_in.dtype), difference_in))


def _is_identity(step) -> bool:
    return step.kind is Kind.ACTIVATION and step.operation.name == "linear"


def _signed_products(operation, positive, negative) -> tuple:
    """``(W+ p + W- n, W+ n + W- p)`` without bias: contributions through a linear layer."""
    return (operation.forward([positive], POSITIVE, None) + operation.forward([negative], NEGATIVE, None),
            operation.forward([negative], POSITIVE, None) + operation.forward([positive], NEGATIVE, None))


def _signed_contributions(operation, difference) -> tuple:
    """:func:`_signed_products` of ``difference``'s sign split by two products instead of four:
    ``s = W d`` and ``t = |W| |d|`` give ``W+ p + W- n = (s + t) / 2`` and ``W+ n + W- p = (s - t) / 2``.

    Zeros stay exact, as RevealCancel's pseudocount needs: a part is zero when every non-zero
    ``w d`` has the other sign; then each term of ``t`` is exactly minus (plus) that of ``s``, and
    the two products, of one shape, add them in the same order, so ``s + t`` (``s - t``) is exactly 0.
    Otherwise the two ways agree up to float rounding, relative to ``t``: a part far smaller than the
    other can come out with the wrong sign, hence the clamp (the four products cannot).
    """
    signed = operation.forward([difference], KEEP, None)
    absolute = operation.forward([tf.abs(difference)], ABSOLUTE, None)
    return tf.nn.relu(0.5 * (signed + absolute)), tf.minimum(0.5 * (signed - absolute), 0)


class DeepLiftPass(ReferencePass):
    """DeepLIFT's additions to the engine: a :class:`StepState` forward (differences, contributions,
    activation factors), a multiplier pair backward. The contributions of steps after the input are
    computed only where something needs them (``contributions_needed``): RevealCancel, and reports
    of contributions; Rescale's multipliers need the input's alone.

    Parameters
    ----------
    reference : float or array
        The reference input (number, one input, or one per sample).
    nonlinear_mode : str
        "rescale" or "reveal_cancel" (the contributions of activations depend on it).
    report : str
        "multipliers" (the input: contributions) or "contributions" (at every step).
    """

    def __init__(self, reference, nonlinear_mode: str, report: str = "multipliers"):
        if nonlinear_mode not in NONLINEAR_MODES:
            raise ValueError(f"nonlinear_mode must be one of {NONLINEAR_MODES}, got {nonlinear_mode!r}")
        if report not in ("multipliers", "contributions"):
            raise ValueError(f"report must be 'multipliers' or 'contributions', got {report!r}")
        self.reference = reference
        self.nonlinear_mode = nonlinear_mode
        self.report_kind = report
        # Rescale's multipliers need the contributions of the input only (a third fewer ops to trace).
        self.contributions_needed = nonlinear_mode == "reveal_cancel" or report == "contributions"

    def with_report(self, report: str) -> "DeepLiftPass":
        return DeepLiftPass(self.reference, self.nonlinear_mode, report)

    def state(self, step, inputs, reference_inputs, output, reference_output, input_states) -> StepState:
        difference = output - reference_output
        kind = step.kind
        # An LSTM's contributions are its output's deltas (lstm_deeplift: one multiplier for both parts).
        if kind is Kind.INPUT or kind is Kind.LSTM or (kind is Kind.MAX_POOLING and self.contributions_needed):
            return StepState(*split_by_sign(difference), difference)
        operation = step.operation
        factor = None  # Rescale's dy / dx at an activation, for the multipliers (and contributions)
        if kind is Kind.ACTIVATION and not _is_identity(step) and self.nonlinear_mode == "rescale":
            factor = _rescale_factor(step, reference_inputs[0], reference_output, input_states[0].difference,
                                     difference)
        if not self.contributions_needed:
            return StepState(None, None, difference, factor)
        if kind.has_kernel:
            # Not dz minus one part: contributions that are exactly zero must stay zero, since
            # RevealCancel's pseudocount takes the sign of a near-zero value.
            return StepState(*_signed_contributions(operation, input_states[0].difference), difference)
        if kind is Kind.ADD:
            parts = [split_by_sign(state.difference) for state in input_states]
            return StepState(tf.add_n([p for p, _ in parts]), tf.add_n([n for _, n in parts]), difference)
        if kind is Kind.BATCH_NORM:
            return StepState(*_signed_products(operation, input_states[0].positive, input_states[0].negative),
                             difference)
        if kind is Kind.ACTIVATION:
            positive, negative = input_states[0].positive, input_states[0].negative
            if _is_identity(step):
                return StepState(positive, negative, difference)
            if self.nonlinear_mode == "reveal_cancel":
                positive, negative = pseudocount_near_zero(positive), pseudocount_near_zero(negative)
                new_positive, new_negative = _reveal_cancel_contributions(
                    lambda v: operation.forward([v]), reference_inputs[0], reference_output, positive, negative)
                return StepState(new_positive, new_negative, difference,
                                 ratios=(new_positive / positive, new_negative / negative))
            return StepState(positive * factor, negative * factor, difference, factor)
        # Pooling by averages and layers that move values: the layer applied to each part.
        return StepState(operation.forward([s.positive for s in input_states]),
                         operation.forward([s.negative for s in input_states]), difference)

    def start(self, relevance):
        return (relevance, relevance)

    def report(self, step, relevance, output, reference_output, state):
        if relevance is None:
            return tf.zeros_like(output)
        positive, negative = relevance
        if self.report_kind == "contributions" or step.index == 0:
            return positive * state.positive + negative * state.negative
        if positive is negative:
            return positive
        difference = state.difference
        return tf.where(difference > 0, positive, tf.where(difference < 0, negative, 0.5 * (positive + negative)))


# --- rules -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeepLiftLinearRule(Rule):
    r"""deeplift's "Linear" rule for Dense, Conv2D and Add (see the module docstring).

    Parameters
    ----------
    ablation : bool
        The paper's "DeepLIFT ablation" (eq. 13 decoupled): :math:`m^+_{in} = W^{+T} m^+`,
        :math:`m^-_{in} = W^{-T} m^-` for every input.
    """

    ablation: bool = False
    weight_modifiers = (KEEP, POSITIVE, NEGATIVE, ABSOLUTE)
    needs_reference = True

    def unsupported_reason(self, step):
        if not (step.kind.has_kernel or step.kind is Kind.ADD):
            return "the DeepLIFT linear rule applies to Dense, Conv2D and Add layers"
        return super().unsupported_reason(step)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        reference = reference_of(self, context)
        operation = step.operation
        positive, negative = relevance

        def transpose(multipliers, weights):
            return operation.transpose(multipliers, inputs, weights)

        if self.ablation:
            # Decoupled chains: positive multipliers only through W+, negative only through W-.
            return list(zip(transpose(positive, POSITIVE), transpose(negative, NEGATIVE)))
        if _same(relevance):
            same_sign = transpose(positive, KEEP)  # W+^T m + W-^T m = W^T m
            return [(t, t) for t in same_sign]  # all three cases of the rule are W^T m
        both = transpose(positive + negative, KEEP)
        if step.kind is Kind.ADD:  # identity weights: W+ = I, W- = 0
            same_sign, cross = [positive] * len(inputs), [negative] * len(inputs)
        else:
            # W+^T m+ + W-^T m- and W-^T m+ + W+^T m- from two transposes (not four): with
            # b = W^T (m+ + m-) and a = |W|^T (m+ - m-) they are (b + a) / 2 and (b - a) / 2.
            spread = transpose(positive - negative, ABSOLUTE)
            same_sign = [0.5 * (b + a) for a, b in zip(spread, both)]
            cross = [0.5 * (b - a) for a, b in zip(spread, both)]
        at_zero = [0.5 * b for b in both]
        results = []
        for index, (state, x, x0) in enumerate(zip(reference.input_states, inputs, reference.inputs)):
            # deeplift sums the three cases times 0/1 masks; selecting gives the same numbers.
            difference = _difference(state, x, x0)
            increment = tf.where(difference > 0, same_sign[index],
                                 tf.where(difference < 0, cross[index], at_zero[index]))
            results.append((increment, increment))
        return results


@dataclass(frozen=True)
class DeepLiftBatchNormRule(Rule):
    """deeplift's BatchNormalization rule (multipliers through the positive and negative scales).

    Parameters
    ----------
    ablation : bool
        The decoupled chains of ``deep_lift.ablation``: ``(k+ m+, k- m-)``.
    """

    ablation: bool = False
    weight_modifiers = (POSITIVE, NEGATIVE)
    needs_reference = True

    def unsupported_reason(self, step):
        if step.kind is not Kind.BATCH_NORM:
            return "the DeepLIFT BatchNorm rule applies to BatchNormalization layers"
        return super().unsupported_reason(step)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        operation = step.operation
        positive, negative = relevance

        def scaled(multipliers, weights):
            return operation.transpose(multipliers, inputs, weights)[0]

        if _same(relevance) and not self.ablation:
            both = scaled(positive, KEEP)  # k+ m + k- m = k m
            return [(both, both)]
        if self.ablation:
            return [(scaled(positive, POSITIVE), scaled(negative, NEGATIVE))]
        kept = scaled(positive, POSITIVE) + scaled(negative, NEGATIVE)
        return [(kept, scaled(positive, NEGATIVE) + scaled(negative, POSITIVE))]


@dataclass(frozen=True)
class DeepLiftActivationRule(Rule):
    """Rescale or RevealCancel at an elementwise activation (linear activations pass both on).

    Parameters
    ----------
    mode : str
        "rescale" or "reveal_cancel".
    """

    mode: str = "rescale"
    needs_linear = False
    needs_reference = True

    def __post_init__(self):
        if self.mode not in NONLINEAR_MODES:
            raise ValueError(f"DeepLiftActivationRule: mode must be one of {NONLINEAR_MODES}, got {self.mode!r}")

    def unsupported_reason(self, step):
        if step.kind is not Kind.ACTIVATION:
            return "the DeepLIFT nonlinear rules apply to activation layers"
        return None

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        reference = reference_of(self, context)
        positive, negative = relevance
        if _is_identity(step):
            return [relevance]
        if self.mode == "rescale":
            factor = reference.state.factor  # computed for the forward contributions
            if factor is None:  # a pass in RevealCancel mode: the rule's own Rescale factor
                factor = _rescale_factor(step, reference.inputs[0], reference.output,
                                         _difference(reference.input_states[0], inputs[0], reference.inputs[0]),
                                         _difference(reference.state, output, reference.output))
            if _same(relevance):
                both = factor * positive
                return [(both, both)]
            return [(factor * positive, factor * negative)]
        ratios = reference.state.ratios  # computed with the forward contributions
        if ratios is None:
            before, after = reference.input_states[0], reference.state
            if before.positive is None or after.positive is None:
                raise ValueError(f"layer {step.describe()}: the RevealCancel rule needs the contributions of a "
                                 "DeepLiftPass in 'reveal_cancel' mode (a 'rescale' pass computes none)")
            ratios = (after.positive / pseudocount_near_zero(before.positive),
                      after.negative / pseudocount_near_zero(before.negative))
        return [(ratios[0] * positive, ratios[1] * negative)]


def deep_lift_recipe(reference, nonlinear_mode: str, ablation: bool) -> Recipe:
    """The recipe of a DeepLIFT method (see the module docstring)."""
    if nonlinear_mode not in NONLINEAR_MODES:
        raise ValueError(f"nonlinear_mode must be one of {NONLINEAR_MODES}, got {nonlinear_mode!r}")
    try:
        value = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"reference must be a number or an array of numbers, got {reference!r}") from error
    if not np.isfinite(value).all():
        raise ValueError(f"reference must be finite, got {reference!r}")
    linear = DeepLiftLinearRule(ablation)
    rules = (
        (SELECTORS["dense"], linear),
        (SELECTORS["conv"], linear),
        (SELECTORS["add"], linear),
        (SELECTORS["batch_norm"], DeepLiftBatchNormRule(ablation)),
        (SELECTORS["average_pooling"], GradientRule()),
        (SELECTORS["activation"], DeepLiftActivationRule(nonlinear_mode)),
    )
    if nonlinear_mode == "rescale" and not ablation:
        rules += ((SELECTORS["lstm"], DeepLiftLSTMRule(NEAR_ZERO)),)
    return Recipe(rules, head="gradient", reference_pass=DeepLiftPass(value, nonlinear_mode))


class DeepLiftAnalyzer(NativeAnalyzer):
    """The native analyzer for DeepLIFT, with the contributions at every layer besides the
    multipliers (see :mod:`keras_xai.deeplift`)."""

    def __init__(self, method, model, dtype="float32", **params):
        super().__init__(method, model, dtype=dtype, **params)
        self._contribution_engine = None

    def _contributions_engine(self) -> Engine:
        """The engine that reports contributions at every step (built on first use)."""
        if self._contribution_engine is None:
            self._contribution_engine = Engine(
                self._model, assign_rules(self._model, self._recipe, self.name), self._recipe.head, self.dtype,
                reference_pass=self._recipe.reference_pass.with_report("contributions"))
        return self._contribution_engine

    def contributions(self, x, neuron_selection="max_activation") -> dict:
        """Contributions to the selected output at every layer's output (layer name -> array).

        The input's entry equals :meth:`analyze`; ``engine="deeplift"`` has the same method.
        """
        return self._relevances_on(self._contributions_engine(), x, neuron_selection)

    def propagate_contributions(self, x, layer, relevance) -> dict:
        """Like :meth:`propagate_from` (both multipliers at ``layer`` set to ``relevance``), but the
        contributions at every layer below (``engine="deeplift"`` has the same method)."""
        (result,) = self._propagate_on(self._contributions_engine(), x, {layer: relevance}).values()
        return result


@register("deep_lift.rescale", "deep_lift", reduction="sum", analyzer_class=DeepLiftAnalyzer)
def rescale(reference=0.0) -> Recipe:
    """DeepLIFT with the Rescale rule (zero reference by default)."""
    return deep_lift_recipe(reference, "rescale", ablation=False)


@register("deep_lift.reveal_cancel", "deep_lift", reduction="sum", analyzer_class=DeepLiftAnalyzer)
def reveal_cancel(reference=0.0) -> Recipe:
    """DeepLIFT with the RevealCancel rule (zero reference by default)."""
    return deep_lift_recipe(reference, "reveal_cancel", ablation=False)


@register("deep_lift.ablation", "deep_lift", reduction="sum", analyzer_class=DeepLiftAnalyzer)
def ablation(reference=0.0, nonlinear_mode: str = "reveal_cancel") -> Recipe:
    """DeepLIFT with decoupled chains: positive multipliers through W+ only, negative through W- (the paper's ablation)."""
    return deep_lift_recipe(reference, nonlinear_mode, ablation=True)
