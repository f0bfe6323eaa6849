r"""Propagation rules: map the relevance at a layer's output to its inputs.

A rule is a small object configured by its constructor. Every rule has one call shape,
``rule(step, inputs, output, relevance, context)``, and returns one tensor per input. The
:class:`Context` carries what the engine knows beyond the step: ``context.shared``, what the rule's
:meth:`Rule.shared_state` computed from the activations alone (once per sample when several vectors
per sample are propagated; None otherwise), and ``context.reference``, the reference pass of methods
that compare with a reference input (DeepLIFT; rules declaring ``needs_reference``). ``step`` gives
the layer as an operation (``step.operation``, a :class:`~keras_xai.operations.LinearOperation` for the
LRP rules) and ``step.inputs_nonnegative``; a rule never looks at the graph or the model.

Notation for a linear layer :math:`z_j = \sum_i x_i w_{ij} + b_j` with relevance :math:`R_j` at its
output, as in Montavon et al. (2019) and iNNvestigate 2.1.2, whose stabilisers these rules copy:
``safe_divide(a, b) = a / (b + 1e-7 * [b == 0])``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_xai.kinds import Kind
from keras_xai.modifiers import KEEP, NEGATIVE, ONES, POSITIVE, SQUARE, plus_positive_part

#: Keras' backend epsilon, iNNvestigate's stabiliser for zero denominators.
SAFE_DIVIDE_EPSILON = 1e-7


def safe_divide(numerator: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
    """``numerator / denominator`` with exact zeros of the denominator replaced by 1e-7
    (iNNvestigate adds ``1e-7 * [b == 0]``: the same numbers with fewer ops)."""
    stabilised = tf.where(tf.equal(denominator, 0), tf.constant(SAFE_DIVIDE_EPSILON, denominator.dtype),
                          denominator)
    return numerator / stabilised


def _positive_part(x):
    return tf.nn.relu(x)


def _negative_part(x):
    return tf.minimum(x, 0)


@dataclass(frozen=True)
class ReferenceContext:
    """The reference pass at one step, for rules with ``needs_reference = True`` (DeepLIFT).

    Attributes
    ----------
    inputs : list of tf.Tensor
        The step's inputs computed from the reference input (batch size 1 when all samples share
        the reference: they broadcast against the inputs).
    output : tf.Tensor
        The step's output computed from the reference input.
    input_states, state
        The reference pass's forward state (:class:`keras_xai.engine.ReferencePass`) of each input
        and of the step's output.
    """

    inputs: list
    output: tf.Tensor
    input_states: list
    state: object


@dataclass(frozen=True)
class Context:
    """What a rule gets besides ``(step, inputs, output, relevance)`` (see the module docstring)."""

    shared: object = None  # this rule's shared_state for the rows' samples, or None
    reference: ReferenceContext | None = None  # the reference pass at this step (needs_reference rules)


#: The context of a plain call: nothing shared, no reference.
NO_CONTEXT = Context()


def reference_of(rule, context):
    """``context.reference``, or a clear error for a DeepLIFT rule called without the reference pass."""
    if context.reference is None:
        raise ValueError(f"{rule!r} needs the reference pass at its step (context.reference): use it in a "
                         "DeepLIFT analyzer, or call it with keras_xai.rules.Context(reference=ReferenceContext(...))")
    return context.reference


class Rule:
    """Base class. ``needs_linear`` rules only apply to linear steps (Dense, Conv2D, ...);
    ``needs_reference`` rules get the whole backward quantity (a tuple for DeepLIFT) and
    ``context.reference``, the others one tensor (the engine applies them to each component)."""

    needs_linear = True
    needs_reference = False
    #: The weight modifiers (:mod:`keras_xai.modifiers`) the rule asks the linear operation for.
    weight_modifiers: tuple = (KEEP,)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT) -> list:
        raise NotImplementedError

    def shared_state(self, step, inputs, output):
        """What the rule computes from the activations alone, once per sample when several vectors
        are propagated per sample (``propagate_from`` with k vectors); given back to ``__call__`` as
        ``context.shared`` for every vector of the sample. None: nothing to share."""
        return None

    def unsupported_reason(self, step) -> str | None:
        """Why this rule cannot handle ``step`` (None if it can)."""
        if self.needs_linear and not step.is_linear:
            return f"{type(self).__name__} needs a linear layer"
        if self.needs_linear:
            missing = [str(m) for m in self.weight_modifiers if not step.operation.supports(m)]
            if missing:
                return f"{type(self).__name__} needs weights {missing}, which this layer cannot provide"
        return None


def _redistribute(step, inputs, scaled_relevance, weights=KEEP):
    """``x_i * sum_j w'_ij s_j`` for each input: the common last half of the z-type rules."""
    return [x * c for x, c in zip(inputs, step.operation.transpose(scaled_relevance, inputs, weights))]


@dataclass(frozen=True)
class ZRule(Rule):
    r"""LRP-0 / z-rule: :math:`R_i = \sum_j \frac{x_i w_{ij}}{z_j} R_j` (bias a constant input).

    Parameters
    ----------
    bias : bool
        Include the bias in :math:`z_j` (``False`` = the "ignore bias" variant).
    """

    bias: bool = True

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        # With the bias, z is the step's output (of a linear step) itself.
        z = output if self.bias else step.operation.forward(inputs, KEEP, None)
        return _redistribute(step, inputs, safe_divide(relevance, z))


@dataclass(frozen=True)
class EpsilonRule(Rule):
    r"""LRP-epsilon: :math:`R_i = \sum_j \frac{x_i w_{ij}}{z_j + \epsilon\,\mathrm{sign}(z_j)} R_j`,
    with :math:`\mathrm{sign}(0) = 1`.

    Parameters
    ----------
    epsilon : float
        Stabiliser, > 0.
    bias : bool
        Include the bias in :math:`z_j`.
    """

    epsilon: float = 1e-7
    bias: bool = True

    def __post_init__(self):
        if not self.epsilon > 0:
            raise ValueError(f"EpsilonRule: epsilon must be > 0, got {self.epsilon}")

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        z = output if self.bias else step.operation.forward(inputs, KEEP, None)
        stabilised = tf.where(z >= 0, z + self.epsilon, z - self.epsilon)  # sign(0) = +1
        return _redistribute(step, inputs, relevance / stabilised)


@dataclass(frozen=True)
class GammaRule(Rule):
    r"""LRP-gamma (Montavon et al. 2019, sec. 10.2.2): the z-rule on weights that favour positive
    contributions, :math:`w' = w + \gamma w^+` (and :math:`b' = b + \gamma b^+`),
    :math:`R_i = \sum_j \frac{x_i w'_{ij}}{\sum_{i'} x_{i'} w'_{i'j} + b'_j} R_j`. gamma 0 is the
    z-rule; as gamma grows, the rule tends to z+ on non-negative inputs. It favours positive
    contributions only where inputs are non-negative (after ReLUs); on signed inputs (a first layer)
    :math:`\gamma w^+` also amplifies the negative contributions :math:`x_i w_{ij}^+` with :math:`x_i < 0`.

    Parameters
    ----------
    gamma : float
        Weight of the positive part, >= 0 (zennit's default 0.25).
    bias : bool
        Include the (modified) bias in the denominator.
    """

    gamma: float = 0.25
    bias: bool = True

    def __post_init__(self):
        if not self.gamma >= 0:
            raise ValueError(f"GammaRule: gamma must be >= 0, got {self.gamma}")
        object.__setattr__(self, "modifier", plus_positive_part(self.gamma))  # built once: cached per graph

    @property
    def weight_modifiers(self):
        return (self.modifier,)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        z = step.operation.forward(inputs, self.modifier, self.modifier if self.bias else None)
        return _redistribute(step, inputs, safe_divide(relevance, z), self.modifier)


@dataclass(frozen=True)
class AlphaBetaRule(Rule):
    r"""LRP-alpha-beta: :math:`R_i = \sum_j \left(\alpha \frac{(x_i w_{ij})^+}{z_j^+}
    - \beta \frac{(x_i w_{ij})^-}{z_j^-}\right) R_j`.

    As in iNNvestigate, the activating part is :math:`z^+_j = \sum_i x_i^+ w_{ij}^+ + x_i^- w_{ij}^-
    + b_j^+ + b_j^-` and the inhibiting part :math:`z^-_j = \sum_i x_i^+ w_{ij}^- + x_i^- w_{ij}^+
    + b_j^- + b_j^+`; so with ``bias=True`` both denominators carry the whole bias.

    Parameters
    ----------
    alpha, beta : float
        Weights of the activating and inhibiting parts (the common choice is alpha - beta = 1).
    bias : bool
        Include the bias in the denominators.
    """

    alpha: float = 1.0
    beta: float = 0.0
    bias: bool = True
    weight_modifiers = (POSITIVE, NEGATIVE)

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"AlphaBetaRule: alpha and beta must be >= 0, got {self.alpha}, {self.beta}")

    def _denominator(self, step, x_pos, x_neg, weights_for_pos, weights_for_neg):
        """z of the terms x+ w(weights_for_pos) + x- w(weights_for_neg), with the bias if asked."""
        operation = step.operation
        if x_neg is None:
            # Inputs are >= 0, so x- = 0 and its term is exactly the other half of the bias.
            return operation.forward(x_pos, weights_for_pos, KEEP if self.bias else None)
        bias_pos = weights_for_pos if self.bias else None
        bias_neg = weights_for_neg if self.bias else None
        return operation.forward(x_pos, weights_for_pos, bias_pos) + operation.forward(x_neg, weights_for_neg, bias_neg)

    def _part(self, step, x_pos, x_neg, weights_for_pos, weights_for_neg, relevance, z=None):
        """Relevance of the terms x+ w(weights_for_pos) + x- w(weights_for_neg) (``z``: their
        denominator, if already computed)."""
        if z is None:
            z = self._denominator(step, x_pos, x_neg, weights_for_pos, weights_for_neg)
        scaled = safe_divide(relevance, z)
        from_pos = _redistribute(step, x_pos, scaled, weights_for_pos)
        if x_neg is None:
            return from_pos
        from_neg = _redistribute(step, x_neg, scaled, weights_for_neg)
        return [a + b for a, b in zip(from_pos, from_neg)]

    @staticmethod
    def _signed_inputs(step, inputs) -> tuple:
        x_pos = [x if nonneg else _positive_part(x) for x, nonneg in zip(inputs, step.inputs_nonnegative)]
        x_neg = None if all(step.inputs_nonnegative) else [_negative_part(x) for x in inputs]
        return x_pos, x_neg

    def shared_state(self, step, inputs, output):
        # The denominators (convolutions of the inputs) are the same for every vector of a sample.
        x_pos, x_neg = self._signed_inputs(step, inputs)
        activating = self._denominator(step, x_pos, x_neg, POSITIVE, NEGATIVE)
        if not self.beta:
            return (activating,)
        return activating, self._denominator(step, x_pos, x_neg, NEGATIVE, POSITIVE)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        shared = context.shared
        x_pos, x_neg = self._signed_inputs(step, inputs)
        denominators = shared or (None, None)
        activating = self._part(step, x_pos, x_neg, POSITIVE, NEGATIVE, relevance, denominators[0])
        if not self.beta:
            return activating if self.alpha == 1 else [self.alpha * a for a in activating]
        inhibiting = self._part(step, x_pos, x_neg, NEGATIVE, POSITIVE, relevance, denominators[1])
        return [self.alpha * a - self.beta * b for a, b in zip(activating, inhibiting)]


class ZPlusRule(AlphaBetaRule):
    r"""z+ rule (= Excitation Backprop, DTD's z+): alpha 1, beta 0, no bias,
    :math:`R_i = \sum_j \frac{(x_i w_{ij})^+}{\sum_{i'} (x_{i'} w_{i'j})^+} R_j`."""

    def __init__(self):
        super().__init__(alpha=1.0, beta=0.0, bias=False)


@dataclass(frozen=True)
class ZPlusFastRule(Rule):
    r"""z+ assuming :math:`x \ge 0`: :math:`R_i = \sum_j \frac{x_i w_{ij}^+}{\sum_{i'} x_{i'} w_{i'j}^+} R_j`
    (no bias; negative inputs are *not* clipped, as in iNNvestigate)."""

    weight_modifiers = (POSITIVE,)

    def shared_state(self, step, inputs, output):
        return step.operation.forward(inputs, POSITIVE, None)  # the same for every vector of a sample

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        shared = context.shared
        z = step.operation.forward(inputs, POSITIVE, None) if shared is None else shared
        return _redistribute(step, inputs, safe_divide(relevance, z), POSITIVE)


@dataclass(frozen=True)
class WSquareRule(Rule):
    r"""DTD w-square rule: :math:`R_i = \sum_j \frac{w_{ij}^2}{\sum_{i'} w_{i'j}^2} R_j`
    (independent of the input values; the sum runs over the inputs each output actually sees)."""

    weight_modifiers = (SQUARE,)

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        # The denominator does not depend on the data: compute it for one sample and broadcast.
        ones = [tf.ones_like(x[:1]) for x in inputs]
        (weights,) = self.weight_modifiers
        total = step.operation.forward(ones, weights, None)
        return step.operation.transpose(safe_divide(relevance, total), inputs, weights)


@dataclass(frozen=True)
class FlatRule(WSquareRule):
    r"""Flat rule: :math:`R_i = \sum_j \frac{1}{\sum_{i'} 1} R_j` (every connected input gets an
    equal share)."""

    weight_modifiers = (ONES,)


@dataclass(frozen=True)
class BoundedRule(Rule):
    r"""DTD :math:`z^\mathcal{B}` rule for inputs in the box ``[low, high]``:

    .. math:: R_i = \sum_j \frac{x_i w_{ij} - l\, w_{ij}^+ - h\, w_{ij}^-}
              {\sum_{i'} x_{i'} w_{i'j} - l\, w_{i'j}^+ - h\, w_{i'j}^-} R_j

    Parameters
    ----------
    low, high : float
        Lowest and highest possible input value.
    """

    low: float = -1.0
    high: float = 1.0
    weight_modifiers = (KEEP, POSITIVE, NEGATIVE)

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"BoundedRule: need low < high, got low={self.low}, high={self.high}")

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        operation = step.operation
        # The bound terms do not depend on the data: compute them for one sample and broadcast.
        lows = [tf.ones_like(x[:1]) * self.low for x in inputs]
        highs = [tf.ones_like(x[:1]) * self.high for x in inputs]
        bounds = operation.forward(lows, POSITIVE, None) + operation.forward(highs, NEGATIVE, None)
        scaled = safe_divide(relevance, operation.forward(inputs, KEEP, None) - bounds)
        from_x = _redistribute(step, inputs, scaled, KEEP)
        from_low = [self.low * c for c in operation.transpose(scaled, inputs, POSITIVE)]
        from_high = [self.high * c for c in operation.transpose(scaled, inputs, NEGATIVE)]
        return [a - (b + c) for a, b, c in zip(from_x, from_low, from_high)]


@dataclass(frozen=True)
class GradientRule(Rule):
    r"""The chain rule: :math:`R_i = \sum_j \frac{\partial y_j}{\partial x_i} R_j`. Works on every step,
    with the ops ``tf.GradientTape`` runs, so that gradients are the tape's bit for bit."""

    needs_linear = False

    def shared_state(self, step, inputs, output):
        # Max pooling: the maxima are found once per sample, not again for each of its vectors by
        # MaxPoolGrad (500 rows of 28x28x64: 78 -> 28 ms); MaxPoolGradWithArgmax gives MaxPoolGrad's numbers.
        return step.operation.argmax(inputs) if step.kind is Kind.MAX_POOLING else None

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        if context.shared is not None:
            return step.operation.vjp_from_argmax(inputs, context.shared, relevance)
        return step.operation.vjp(inputs, output, relevance)


class ActivationRule(Rule):
    """Base of the rules for elementwise activation layers only (the error names the rule)."""

    needs_linear = False

    def unsupported_reason(self, step):
        if step.kind is not Kind.ACTIVATION:
            return f"{type(self).__name__} only applies to activation layers"
        return None


@dataclass(frozen=True)
class PassRule(ActivationRule):
    """Identity: relevance passes an elementwise activation unchanged (LRP's treatment of ReLU)."""

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        return [relevance]


@dataclass(frozen=True)
class DeconvRule(ActivationRule):
    r"""Deconvnet (Zeiler & Fergus 2014) at a ReLU: :math:`R_{in} = \max(0, R_{out})`, i.e. the
    ReLU applied to the backward signal instead of the forward mask. Other activations: gradient."""

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        if step.operation.is_relu:
            return [tf.nn.relu(relevance)]
        return step.operation.vjp(inputs, output, relevance)


@dataclass(frozen=True)
class GuidedRule(ActivationRule):
    r"""Guided backprop (Springenberg et al. 2015) at a ReLU:
    :math:`R_{in} = [x > 0] \max(0, R_{out})`. Other activations: gradient."""

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        if step.operation.is_relu:
            return step.operation.vjp(inputs, output, tf.nn.relu(relevance))
        return step.operation.vjp(inputs, output, relevance)


def rule_from_spec(spec) -> Rule:
    """A rule from an iNNvestigate-style spec: a :class:`Rule`, a name ("Z", "Epsilon", "Flat",
    "WSquare", "ZPlus", "ZPlusFast", "AlphaBeta" ...), or a ``(low, high)`` box for :class:`BoundedRule`."""
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return BoundedRule(float(spec[0]), float(spec[1]))
    named = {
        "Z": ZRule(), "ZIgnoreBias": ZRule(bias=False), "Epsilon": EpsilonRule(),
        "WSquare": WSquareRule(), "Flat": FlatRule(), "ZPlus": ZPlusRule(), "ZPlusFast": ZPlusFastRule(),
        "Alpha1Beta0": AlphaBetaRule(1, 0), "Alpha1Beta0IgnoreBias": AlphaBetaRule(1, 0, bias=False),
        "Alpha2Beta1": AlphaBetaRule(2, 1), "Alpha2Beta1IgnoreBias": AlphaBetaRule(2, 1, bias=False),
        "Gradient": GradientRule(), "Gamma": GammaRule(),
    }
    if isinstance(spec, str) and spec in named:
        return named[spec]
    raise ValueError(
        f"unknown rule {spec!r}: give a keras_xai.rules.Rule, a (low, high) box, or one of {sorted(named)}"
    )
