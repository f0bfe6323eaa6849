r"""Excitation Backprop, its contrastive variant, and contrastive LRP in the native engine.

**Excitation Backprop** (Zhang et al. 2018, "Top-down neural attention by excitation backprop")
propagates a probability: the top-down signal is a one-hot prior (1 at the selected unit) and
every unit passes its "marginal winning probability" to its inputs in proportion to their positive
contributions, :math:`P(a_i | a_j) \propto a_i w_{ij}^+`. "When Explanations Lie" (eq. 5) writes
it as the z+ rule

.. math:: R_i = \sum_j \frac{[x_i w_{ij}]^+}{\sum_{i'} [x_{i'} w_{i'j}]^+} R_j ,

the form used here on every linear step (Dense, Conv2D, BatchNorm as an affine layer, Add,
average pooling). For non-negative inputs (every layer after a ReLU) this is exactly Zhang et al.'s
:math:`a_i w_{ij}^+`; at the first layer, whose inputs may be negative, the positive part of the
product also counts :math:`x_i < 0, w_{ij} < 0` (eq. 5), so the map stays a non-negative
distribution. Max pooling passes the signal to the maximum (the gradient), ReLUs pass it on
unchanged. The pass starts from 1 (not the logit), so the input map sums to 1 (the bias is
ignored; mass is only lost where a unit has no positive contribution). The result is
``lrp.z_plus`` divided by the logit, except on average pooling (z+ here, z in ``lrp.z_plus``).

**Contrastive Excitation Backprop** (Zhang et al. 2018; "When Explanations Lie" eq. 16): at the
final dense layer the signal is :math:`(Z^+ - N^+) m_k`, where :math:`N^+` is :math:`Z^+`
computed with the negated weights :math:`-W` (the dual unit of class k); below it plain EB. As
:math:`[x_i (-w_{ij})]^+ = -[x_i w_{ij}]^-`, :math:`N^+` is the inhibiting half of the
alpha-beta rule, and the final layer's rule is LRP-alpha1-beta1 without bias. Because every
other step is linear in the signal, this equals EB(k) minus EB of the dual unit computed with a
model whose final weights are negated (both start from 1); the map sums to 0.

**Contrastive LRP** (Gu et al. 2019, CLRP; "When Explanations Lie" eq. 15):

.. math:: \max\left(0,\; n\big(r^{z^+}_x(x \mid r_{logits} := y_k)\big)
          - n\big(r^{z^+}_x(x \mid r_{logits} := y_{-k})\big)\right),

with :math:`y_k = y \odot m_k`, :math:`y_{-k} = y \odot (1 - m_k)` (the other classes' logits,
propagated through their own weights: the "dual virtual class" CLRP1) and :math:`n` dividing a map
by its sum. By default the logits enter as absolute values, as in Gu et al.'s code
(``JindongGu/Contrastive-LRP``, ``initialise_rel(torch.abs(R))``); eq. 15 writes them without
(``absolute_logits=False``), which lets negative logits of other classes cancel in the dual map
and its sum, the normaliser, approach zero. The target map does not depend on it (n removes the
scale). ``dual="negated"`` is Gu et al.'s CLRP2 (the target logit through the negated final
weights).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from keras_xai.analyzer import NativeAnalyzer, assign_rules
from keras_xai.analyzers import SELECTORS, Recipe, register
from keras_xai.canonize import UnsupportedLayerError
from keras_xai.engine import Engine
from keras_xai.rules import AlphaBetaRule, PassRule, ZPlusRule, rule_from_spec
from keras_xai.validation import neuron_indices

#: z+ (and so EB) is defined for non-negative activations (ReLU nets).
_RELU_ONLY = ("relu", "linear")


class ContrastiveZPlusRule(AlphaBetaRule):
    r"""Contrastive z+ at the final layer ("When Explanations Lie" eq. 16):
    :math:`R_i = \sum_j \left(\frac{[x_i w_{ij}]^+}{\sum_{i'} [x_{i'} w_{i'j}]^+}
    - \frac{[-x_i w_{ij}]^+}{\sum_{i'} [-x_{i'} w_{i'j}]^+}\right) R_j`,
    i.e. :math:`(Z^+ - N^+) R` = alpha 1, beta 1, no bias."""

    def __init__(self):
        super().__init__(alpha=1.0, beta=1.0, bias=False)


class NegatedZPlusRule(AlphaBetaRule):
    r""":math:`N^+` alone, up to its sign: z+ of the negated weights,
    :math:`-\sum_j \frac{[-x_i w_{ij}]^+}{\sum_{i'} [-x_{i'} w_{i'j}]^+} R_j`
    (alpha 0, beta 1, no bias); used where a map is normalised by its sum afterwards."""

    def __init__(self):
        super().__init__(alpha=0.0, beta=1.0, bias=False)


def _z_plus_rules(output_rule=None, input_layer_rule=None) -> tuple:
    pairs = []
    if output_rule is not None:  # first: in a one-layer model the contrast wins over the input rule
        pairs.append((SELECTORS["output_layer"], output_rule))
    if input_layer_rule is not None:
        pairs.append((SELECTORS["first_layer"], rule_from_spec(input_layer_rule)))
    pairs += [
        (SELECTORS["kernel"], ZPlusRule()),
        (SELECTORS["batch_norm"], ZPlusRule()),
        (SELECTORS["add"], ZPlusRule()),
        (SELECTORS["average_pooling"], ZPlusRule()),
        (SELECTORS["activation"], PassRule()),
    ]
    return tuple(pairs)


def _output_layer(analyzer: NativeAnalyzer, method: str):
    """The step flagged as the model's output layer; a clear error if there is none."""
    canonical = analyzer.canonical_model
    steps = canonical.steps
    flagged = [s for s in steps if s.output_layer]
    if not flagged:
        last = steps[canonical.output_index]
        raise UnsupportedLayerError(
            f"{method} changes the rule of the final Dense/Conv2D layer, but the output of model "
            f"{analyzer.model.name!r} comes from layer {last.describe()} ({last.kind}); the output must be "
            "computed by a Dense or Conv2D layer (optionally followed by Flatten/Reshape)"
        )
    return flagged[0]


class OutputLayerAnalyzer(NativeAnalyzer):
    """A native analyzer whose method needs a Dense/Conv2D output layer (checked on creation)."""

    def __init__(self, method, model, dtype="float32", **params):
        super().__init__(method, model, dtype=dtype, **params)
        _output_layer(self, method.name)


@register("excitation_backprop", "lrp")
def excitation_backprop() -> Recipe:
    """Excitation Backprop (Zhang et al. 2018): the z+ rule on every layer, started from 1 at the selected unit."""
    return Recipe(_z_plus_rules(), head="gradient", activations=_RELU_ONLY)


@register("excitation_backprop.contrastive", "lrp", analyzer_class=OutputLayerAnalyzer)
def excitation_backprop_contrastive() -> Recipe:
    """Contrastive Excitation Backprop: (Z+ - N+) at the final dense layer (paper eq. 16), z+ below."""
    return Recipe(_z_plus_rules(output_rule=ContrastiveZPlusRule()), head="gradient", activations=_RELU_ONLY)


# --- contrastive LRP ---------------------------------------------------------------------------

DUALS = ("others", "negated")


@dataclass(frozen=True)
class ContrastiveRecipe(Recipe):
    """A :class:`Recipe` plus what contrastive LRP needs: the dual pass's rules and the options.

    Attributes
    ----------
    dual_rules : tuple
        Rules of the dual pass (the same as ``rules`` for ``dual="others"``).
    dual : str
        "others" (eq. 15, CLRP1) or "negated" (CLRP2).
    absolute_logits : bool
        Start from ``|y|`` instead of ``y`` (Gu et al.'s code).
    clip : bool
        Apply eq. 15's ``max(0, .)``.
    """

    dual_rules: tuple = ()
    dual: str = "others"
    absolute_logits: bool = True
    clip: bool = True


def normalize_by_sum(maps: np.ndarray) -> np.ndarray:
    """Each sample's map divided by its sum over all non-batch axes (n() of eq. 15); a map summing
    to exactly 0 stays 0."""
    totals = maps.reshape(len(maps), -1).sum(axis=1).reshape(-1, *[1] * (maps.ndim - 1))
    safe = np.where(totals == 0, 1, totals)
    return np.where(totals == 0, 0, maps / safe).astype(maps.dtype, copy=False)


class ContrastiveLRPAnalyzer(NativeAnalyzer):
    """Contrastive LRP (Gu et al. 2019, "When Explanations Lie" eq. 15) on the native engine.

    ``analyze`` and ``relevances`` return ``max(0, n(target) - n(dual))`` at every layer (n per
    sample and layer); ``propagate_from`` propagates the injected vector with the base z+ rule (the
    contrast is a choice of the starting vectors; below them the pass is plain z+).
    """

    def __init__(self, method, model, dtype="float32", **params):
        super().__init__(method, model, dtype=dtype, **params)
        recipe = self._recipe
        if recipe.dual == "negated":
            _output_layer(self, method.name)
            dual = replace(recipe, rules=recipe.dual_rules)
            self._dual_engine = Engine(self._model, assign_rules(self._model, dual, method.name),
                                       recipe.head, self.dtype)
        else:
            self._dual_engine = self._engine

    def _heads(self, x, neuron_selection) -> tuple:
        """Relevance at the model output for the target and the dual pass, shaped like the output."""
        logits = self._engine.predict(x).numpy()
        indices = neuron_indices(neuron_selection, len(x), self.n_outputs)
        indices = np.where(indices < 0, np.argmax(logits, axis=1), indices)
        one_hot = np.eye(self.n_outputs, dtype=logits.dtype)[indices]
        start = np.abs(logits) if self._recipe.absolute_logits else logits
        target = one_hot * start
        dual = (1 - one_hot) * start if self._recipe.dual == "others" else target
        shape = (len(x), *self._model.steps[self._model.output_index].output_shape[1:])
        return target.reshape(shape), dual.reshape(shape)

    def _contrast(self, x, neuron_selection, only_input: bool = False) -> list:
        """``max(0, n(target) - n(dual))`` per reported step (only the input's if ``only_input``)."""
        target_head, dual_head = self._heads(x, neuron_selection)
        start = self._model.output_index
        if self._dual_engine is self._engine:  # one batched pass for both starting vectors
            both = self._engine.inject(np.concatenate([x, x]), start, np.concatenate([target_head, dual_head]))
            pairs = [(v[:len(x)], v[len(x):]) for v in both]
        else:
            pairs = list(zip(self._engine.inject(x, start, target_head), self._dual_engine.inject(x, start, dual_head)))
        if only_input:
            pairs = [pairs[self._engine.reported_steps(start).index(0)]]
        results = []
        for target, dual in pairs:
            difference = normalize_by_sum(target.numpy()) - normalize_by_sum(dual.numpy())
            results.append(np.maximum(difference, 0) if self._recipe.clip else difference)
        return results

    def analyze(self, x, neuron_selection="max_activation") -> np.ndarray:
        """Contrastive LRP map for the selected output unit (eq. 15), shaped like ``x``."""
        return self._contrast(self._input(x), neuron_selection, only_input=True)[0]

    def relevances(self, x, neuron_selection="max_activation") -> dict:
        """``max(0, n(target) - n(dual))`` at every layer's output (n per sample and layer)."""
        x = self._input(x)
        values = self._contrast(x, neuron_selection)
        return self._named(self._engine.reported_steps(self._model.output_index), values, x)


@register("lrp.contrastive", "lrp", analyzer_class=ContrastiveLRPAnalyzer)
def lrp_contrastive(dual: str = "others", absolute_logits: bool = True, clip: bool = True,
                    input_layer_rule=None) -> ContrastiveRecipe:
    """Contrastive LRP (Gu et al. 2019, paper eq. 15): max(0, n(z+ map of y_k) - n(z+ map of the other logits)).

    Parameters
    ----------
    dual : str
        "others": the dual class is every other class, started from their logits (eq. 15,
        Gu et al.'s CLRP1); "negated": the selected logit through the negated final-layer weights
        (CLRP2).
    absolute_logits : bool
        Start from the absolute logits, as Gu et al.'s code (True) or from the logits as eq. 15
        writes (False).
    clip : bool
        Keep eq. 15's max(0, .) (False: the signed difference of the normalised maps).
    input_layer_rule : Rule, str or (low, high), optional
        Rule for the first Dense/Conv2D layer (Gu et al. use the bounded rule, e.g. a box);
        default z+ as everywhere else.
    """
    if dual not in DUALS:
        raise ValueError(f"lrp.contrastive: dual must be one of {DUALS}, got {dual!r}")
    rules = _z_plus_rules(input_layer_rule=input_layer_rule)
    dual_rules = rules if dual == "others" else _z_plus_rules(NegatedZPlusRule(), input_layer_rule)
    return ContrastiveRecipe(rules, head="value", activations=_RELU_ONLY, dual_rules=dual_rules, dual=dual,
                             absolute_logits=bool(absolute_logits), clip=bool(clip))
