r"""Weight modifiers: how a rule asks a linear layer to change its weights (zennit's ``ParamMod``).

A :class:`WeightModifier` is a function applied to every weight (and, where a rule asks, to the
bias): ``w -> max(w, 0)`` for :math:`W^+`, ``w -> w + gamma max(w, 0)`` for LRP-gamma. A rule passes
it to :meth:`~keras_xai.operations.LinearOperation.forward` / ``transpose``, which evaluate the layer
with the modified weights; a new modifier is one line, no layer changes.

Layers with implicit weights (``Add``: 1, average pooling: ``1/n``) apply the modifier to that
constant. For that they need its degree of positive homogeneity, :math:`f(c w) = c^d f(w)` for
``c > 0``: the modified layer is then the plain one times :math:`f(1)\,n^{1-d}`, one number even
where border windows hold fewer inputs only when ``d = 1``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import tensorflow as tf


@dataclass(frozen=True)
class WeightModifier:
    """An elementwise function of the weights.

    Attributes
    ----------
    name : str
        How messages show it ("w+", "w + 0.25 w+").
    function : callable
        Tensor -> tensor of the same shape, elementwise.
    degree : int or None
        Degree of positive homogeneity (``f(c w) = c**degree f(w)`` for ``c > 0``), or None if the
        function has none (then layers with implicit weights cannot apply it).
    at_one : float
        ``f(1)``: the implicit weight 1 of ``Add``, modified.
    """

    name: str
    function: Callable = field(repr=False)
    degree: int | None
    at_one: float

    def __call__(self, weights: tf.Tensor) -> tf.Tensor:
        return self.function(weights)

    def __str__(self) -> str:
        return self.name

    def mean_factor(self, count):
        """``f(1/count) * count``: what turns a mean of ``count`` inputs (weights ``1/count``) into
        their sum with the modified weights (``count`` a number or a tensor)."""
        if self.degree is None:
            raise ValueError(f"weight modifier {self.name!r} has no degree of homogeneity; layers with "
                             "implicit weights (pooling) cannot apply it")
        exponent = 1 - self.degree
        if exponent == 0:
            return self.at_one
        scale = count if exponent == 1 else 1 / count if exponent == -1 else count**exponent
        return scale if self.at_one == 1 else self.at_one * scale


def _unchanged(w):
    return w


def _negative_part(w):
    return tf.minimum(w, 0)


def _square(w):
    return w**2


def _plus_positive_part(w, gamma: float):
    return w + gamma * tf.nn.relu(w)


# Named functions, not lambdas, so that rules holding modifiers can be pickled.
#: ``W`` itself.
KEEP = WeightModifier("w", _unchanged, degree=1, at_one=1.0)
#: ``W+ = max(W, 0)``.
POSITIVE = WeightModifier("w+", tf.nn.relu, degree=1, at_one=1.0)
#: ``W- = min(W, 0)``.
NEGATIVE = WeightModifier("w-", _negative_part, degree=1, at_one=0.0)
#: ``|W|``.
ABSOLUTE = WeightModifier("|w|", tf.abs, degree=1, at_one=1.0)
#: ``W**2`` (DTD's w-square rule).
SQUARE = WeightModifier("w^2", _square, degree=2, at_one=1.0)
#: ``1`` for every connection (the flat rule).
ONES = WeightModifier("1", tf.ones_like, degree=0, at_one=1.0)


def plus_positive_part(gamma: float) -> WeightModifier:
    """``w + gamma max(w, 0)`` (LRP-gamma)."""
    gamma = float(gamma)
    return WeightModifier(f"w + {gamma:g} w+", partial(_plus_positive_part, gamma=gamma), degree=1, at_one=1.0 + gamma)
