r"""The backward rule of PatternNet (:math:`r_{in} = A^T r_{out}`, Sixt et al. eq. 10) and
PatternAttribution (:math:`(W \odot A)^T r_{out}`, eq. 11), and their recipes: the gradient with every
kernel replaced. The patterns come from :class:`keras_xai.pattern.PatternAnalyzer`."""
from __future__ import annotations

import tensorflow as tf

from keras_xai.analyzers import SELECTORS, Recipe
from keras_xai.modifiers import KEEP
from keras_xai.rules import NO_CONTEXT, GradientRule, Rule


class PatternStore:
    """The pattern variables of one analyzer, by layer name (created and filled by
    :class:`~keras_xai.pattern.PatternAnalyzer`), and the patterns the user gave to start with.

    The variables are read inside the compiled passes, so assigning new patterns never retraces.
    """

    def __init__(self, initial=None):
        self.variables: dict = {}
        self.initial = initial  # None, {layer name: array} or a .npz path: loaded once the layers are known


class PatternRule(Rule):
    r"""PatternNet (:math:`r_{in} = A\, r_{out}`) or PatternAttribution
    (:math:`r_{in} = (W \odot A)\, r_{out}`) at a Dense/Conv2D layer: the transpose of the layer
    with its kernel replaced, the bias ignored.

    Parameters
    ----------
    store : PatternStore
        Where the pattern of each layer is looked up by layer name.
    attribution : bool
        Use ``W * A`` (PatternAttribution) instead of ``A`` (PatternNet).
    """

    def __init__(self, store: PatternStore, attribution: bool):
        self.store = store
        self.attribution = bool(attribution)

    def __repr__(self):
        return f"PatternRule(attribution={self.attribution})"

    def unsupported_reason(self, step):
        if not step.kind.has_kernel:
            return "patterns exist for Dense and Conv2D layers only"
        return None

    def __call__(self, step, inputs, output, relevance, context=NO_CONTEXT):
        kernel = tf.convert_to_tensor(self.store.variables[step.layer.name])
        if self.attribution:
            kernel = kernel * step.operation.parameter("weights", KEEP)
        return step.operation.transpose_with_kernel(relevance, inputs, kernel)


def pattern_recipe(attribution: bool, patterns=None) -> Recipe:
    """PatternNet's (``attribution=False``) or PatternAttribution's recipe, with a new store (its
    ``state``) holding the given ``patterns`` to start with."""
    store = PatternStore(patterns)
    rules = (
        (SELECTORS["kernel"], PatternRule(store, attribution)),
        # ReLUs: the gradient mask; BatchNorm, Add, average pooling: their gradient.
        (SELECTORS["any"], GradientRule()),
    )
    return Recipe(rules, head="value", activations=("relu", "linear"), state=store)
