r"""RectGrad (Kim et al. 2019, "Why are saliency maps noisy? Cause of and solution to noisy
saliency maps") in the native engine.

The gradient of the selected logit, except that at every ReLU the backward signal only passes
units whose importance (activation times the signal arriving there) exceeds a threshold:

.. math:: R^{(l)}_i = \mathbb{1}\left[a^{(l)}_i R^{(l+1)}_i > \tau\right] R^{(l+1)}_i,

with :math:`\tau` the ``q``-th percentile of :math:`a^{(l)} \odot R^{(l+1)}` over all units of
that layer, per sample. Conventions, as in the authors' code (``1202kbs/Rectified-Gradient``,
``RectifiedGradient.nonlinearity_grad_override``):

- the pass starts from 1 at the selected logit (``tf.gradients(logit, x)``); the mask is
  invariant to a positive scale of the start but not to its sign, so starting from the logit
  value would change the map wherever the logit is negative;
- the percentile is ``tf.contrib.distributions.percentile(..., interpolation="nearest")`` over
  axes [1, 2, 3] of a feature map and axis 1 of a dense layer: the values are sorted in
  *descending* order and the one at position ``round((n - 1) * (1 - q / 100))`` is taken
  (``round`` half to even);
- strict ``>``: values equal to the threshold are blocked, so the largest value itself never
  passes when the threshold is the maximum (for ``q = 98`` in layers of <= 25 units);
- the mask replaces the ReLU's derivative (no extra ``[z > 0]``): with ``tau >= 0`` inactive units
  have importance 0 and are blocked anyway; with ``tau < 0`` (a low percentile) they pass, as in
  the paper's equation. With ``tau = 0`` the rule is Guided Backprop's
  ``[a > 0] max(0, R)``.

Not copied from the authors' code: it returns ``x * R^{(0)}`` (input times the rectified gradient)
and zeroes the one-pixel border of the signal entering every 'same'-padded convolution; "When
Explanations Lie" (and iNNvestigate-based RectGrad) use the rectified gradient itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_xai.analyzers import SELECTORS, Recipe, register
from keras_xai.kinds import Kind
from keras_xai.rules import NO_CONTEXT, GradientRule, Rule

#: Activations RectGrad is defined for (its mask acts on ReLUs; linear ones pass the gradient).
_RELU_ONLY = ("relu", "linear")


def percentile_position(units: int, q: float) -> int:
    """Position, in the values sorted in descending order, of the ``q``-th percentile with
    "nearest" interpolation as ``tf.contrib.distributions.percentile`` computes it:
    ``round((units - 1) * (1 - q / 100))``, rounding half to even, in float64."""
    return int(np.clip(np.round((units - 1) * (1.0 - q / 100.0)), 0, units - 1))


def percentile_threshold(values: tf.Tensor, q: float) -> tf.Tensor:
    """Per-sample ``q``-th percentile of ``values`` over all non-batch axes ("nearest", see
    :func:`percentile_position`), shaped to broadcast against ``values``."""
    units = values.shape[1:].num_elements()
    flat = tf.reshape(values, [tf.shape(values)[0], -1])
    if units is None:  # unknown static shape: the same position computed in the graph
        count = tf.cast(tf.shape(flat)[1], tf.float64)
        position = tf.cast(tf.round((count - 1) * (1.0 - q / 100.0)), tf.int32)
    else:
        position = percentile_position(units, q)
    # Only the (position + 1) largest values are needed: top_k instead of a full sort.
    largest = tf.math.top_k(flat, k=position + 1, sorted=True).values
    threshold = largest[:, -1]
    return tf.reshape(threshold, [-1] + [1] * (values.shape.rank - 1))


@dataclass(frozen=True)
class RectGradRule(Rule):
    r"""RectGrad at a ReLU: :math:`R_{in} = \mathbb{1}[a \odot R > \tau] \, R` with
    :math:`\tau` the per-sample ``percentile``-th percentile of :math:`a \odot R` over the layer,
    or the fixed ``threshold``. Other activations (linear): the gradient.

    Parameters
    ----------
    percentile : float
        q in [0, 100] (used when ``threshold`` is None).
    threshold : float, optional
        A fixed :math:`\tau` instead of the percentile (0 gives Guided Backprop's rule).
    """

    percentile: float = 98.0
    threshold: float | None = None
    needs_linear = False

    def __post_init__(self):
        if self.threshold is None and not 0 <= self.percentile <= 100:
            raise ValueError(f"RectGradRule: percentile must be in [0, 100], got {self.percentile}")

    def unsupported_reason(self, step):
        if step.kind is not Kind.ACTIVATION:
            return "RectGradRule only applies to activation layers"
        return None

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        if not step.operation.is_relu:
            return step.operation.vjp(inputs, output, relevance)
        importance = output * relevance
        if self.threshold is None:
            threshold = percentile_threshold(importance, self.percentile)
        else:
            threshold = tf.constant(self.threshold, importance.dtype)
        return [tf.where(importance > threshold, relevance, tf.zeros_like(relevance))]


@register("rect_grad", "gradient", reduction="max_abs")
def rect_grad(percentile: float | None = 98.0, threshold: float | None = None) -> Recipe:
    """RectGrad (Kim et al. 2019): gradient passed at a ReLU only where activation x gradient exceeds its percentile.

    Parameters
    ----------
    percentile : float
        q in [0, 100]: per sample and layer, a unit passes the signal only if its importance
        ``a * R`` is above the q-th percentile of the layer's importances (default 98, as in the
        paper and "When Explanations Lie").
    threshold : float, optional
        A fixed threshold instead of the percentile (``percentile`` is then ignored);
        ``threshold=0`` is Guided Backprop started from 1 instead of the logit value.
    """
    if threshold is None:
        if percentile is None:
            raise ValueError("rect_grad needs a percentile in [0, 100] or a fixed threshold")
        if not 0 <= float(percentile) <= 100:
            raise ValueError(f"rect_grad: percentile is a percentage in [0, 100], got {percentile}")
        rule = RectGradRule(percentile=float(percentile))
    else:
        if not np.isfinite(float(threshold)):
            raise ValueError(f"rect_grad: threshold must be a finite number, got {threshold}")
        rule = RectGradRule(threshold=float(threshold))
    rules = ((SELECTORS["activation"], rule), (SELECTORS["any"], GradientRule()))
    return Recipe(rules, head="gradient", activations=_RELU_ONLY)
