"""Attribution methods as data, and the registry that holds them.

A method is a function returning a :class:`Recipe`: an ordered list of
``(layer selector, rule)`` pairs (first match wins), the quantity the backward pass starts from,
and options (multiply by the input, an input augmentation). ``lrp.sequential_preset_a`` is just
another list. Methods are registered with :func:`register`; names and parameters follow
iNNvestigate 2.1.2.

Layers that only move values (MaxPooling2D, Flatten, Reshape, ZeroPadding2D, Concatenate) are
always traversed with the gradient, as in iNNvestigate.

Where the native engine differs from iNNvestigate 2.1.2 (on nets of Dense, Conv2D, ReLU, pooling,
Flatten and Dropout layers all methods agree to <= 1e-6 relative, most bit for bit):

- ``Add`` is a linear layer with identity weights and gets the method's rule (the paper's ResNet
  treatment); iNNvestigate always applies the z-rule to it, and Deep Taylor copies relevance to
  both inputs (we apply z+).
- ``BatchNormalization`` is the affine map ``k = gamma / sqrt(var + eps)``,
  ``c = beta - mean * k`` and gets the method's rule (the presets: their convolution rule).
  iNNvestigate's fusion uses ``sqrt(var**2 + eps)`` and drops gamma from the offset, and its
  presets use an "AlphaBetaX 2,0 / 1,0" rule there.
- The first-layer rule (``input_layer_rule``, the bounded Deep Taylor rule) also looks through
  ``ZeroPadding2D`` (iNNvestigate only through Flatten/Reshape/Permute), so it reaches ResNet's conv1.
- A ``keras.layers.ReLU`` layer is treated like ``Activation("relu")`` (iNNvestigate masks LRP
  relevance at ReLU layers with the gradient).
- SmoothGrad honours ``noise_scale`` (iNNvestigate 2.1.2 ignores it and always uses std 1; the
  default 1.0 matches that) and takes an explicit ``seed``.
- "max_activation" explains the first maximal unit; iNNvestigate splits exact ties.
- Deconvnet and Guided Backprop start from the output value (as iNNvestigate does), the gradient
  family from 1.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import numbers
from dataclasses import dataclass, field
from typing import Callable

from keras_xai import augment
from keras_xai.graph import is_layer_class
from keras_xai.kinds import Kind
from keras_xai.lstm_rule import LSTMRule
from keras_xai.rules import (
    AlphaBetaRule, BoundedRule, DeconvRule, EpsilonRule, FlatRule, GammaRule, GradientRule, GuidedRule,
    PassRule, Rule, WSquareRule, ZPlusFastRule, ZPlusRule, ZRule, rule_from_spec,
)


# --- layer selectors -------------------------------------------------------------------------

def _kind_is(kind):
    return lambda step: step.kind is kind


#: Named selectors usable in ``rules=[(name, rule), ...]``.
SELECTORS: dict = {
    "any": lambda step: True,
    "dense": _kind_is(Kind.DENSE),
    "conv": _kind_is(Kind.CONV2D),
    "conv2d": _kind_is(Kind.CONV2D),
    "kernel": lambda step: step.kind.has_kernel,
    "batch_norm": _kind_is(Kind.BATCH_NORM),
    "add": _kind_is(Kind.ADD),
    "average_pooling": lambda step: step.kind.is_average_pooling,
    "activation": _kind_is(Kind.ACTIVATION),
    "lstm": _kind_is(Kind.LSTM),
    "fused_activation": lambda step: step.is_fused_activation,
    "first_layer": lambda step: step.first_layer,
    # The Dense/Conv2D layer computing the model output (the "final fc" of contrastive EB).
    "output_layer": lambda step: step.output_layer,
}


def selector(spec) -> Callable:
    """A predicate on steps from a name in :data:`SELECTORS`, a Keras layer class, or a callable
    taking a Keras layer. Classes and callables never select the activation split off a layer."""
    if isinstance(spec, str):
        if spec not in SELECTORS:
            raise ValueError(f"unknown layer selector {spec!r}; use one of {sorted(SELECTORS)}, "
                             "a Keras layer class, or a function of the Keras layer")
        return SELECTORS[spec]
    if is_layer_class(spec):
        return lambda step: isinstance(step.layer, spec) and not step.is_fused_activation
    if callable(spec):
        return lambda step: bool(spec(step.layer)) and not step.is_fused_activation
    raise TypeError(f"a layer selector must be a name, a Keras layer class or a callable, got {spec!r}")


# --- recipes and the registry --------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """What a method does, as data.

    Attributes
    ----------
    rules : tuple of (predicate, Rule)
        For linear and activation steps; the first pair whose predicate accepts the step wins.
    head : str
        "gradient" (start from 1 at the selected unit), "value" (its output) or "relu_value".
    activations : tuple of str or None
        Activation functions the method is defined for (None: any).
    times_input : bool
        Multiply the input relevance by the input (Input x Gradient).
    augmentation : keras_xai.augment.Augmentation or None
        Average over modified inputs (SmoothGrad, Integrated Gradients).
    reference_pass : keras_xai.engine.ReferencePass or None
        For methods comparing the input with a reference input (DeepLIFT).
    postprocess : str or None
        "abs" or "square": applied to the gradient at the input, per augmented copy and before
        the multiplication by the input (iNNvestigate's ``postprocess``).
    state : object or None
        What the method's own analyzer class (``register(analyzer_class=...)``) keeps for its rules,
        e.g. PatternNet's pattern store.
    """

    rules: tuple
    head: str = "gradient"
    activations: tuple | None = None
    times_input: bool = False
    augmentation: augment.Augmentation | None = None
    reference_pass: object | None = None
    postprocess: str | None = None
    state: object | None = None


@dataclass(frozen=True)
class AnalyzerInfo:
    """One entry of :func:`list_analyzers`.

    ``reduction`` is how the paper turns a map into 2-D: "max_abs" (max of the absolute value over
    channels, gradient-type maps) or "sum" (sum over channels, relevance-type maps); see
    :func:`keras_xai.reduce_channels`.
    """

    name: str
    family: str
    engines: tuple
    parameters: dict
    description: str
    reduction: str


@dataclass(frozen=True)
class Method:
    """A registered method: its name, family and the function building its :class:`Recipe`."""

    name: str
    family: str
    build: Callable
    engines: tuple = ("native",)
    parameters: dict = field(default_factory=dict)
    description: str = ""
    reduction: str = "sum"
    #: Class of the native analyzer (None: :class:`keras_xai.analyzer.NativeAnalyzer`); methods
    #: with extra state, e.g. fitted patterns, bring their own subclass.
    analyzer_class: type | None = None

    def recipe(self, **params) -> Recipe:
        """Build the recipe, rejecting parameters the method does not have."""
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise TypeError(
                f"{self.name} got unexpected parameter(s) {unknown}; it accepts "
                f"{sorted(self.parameters) or 'no parameters'} (plus dtype)"
            )
        return self.build(**params)


_REGISTRY: dict = {}


def register(name: str, family: str, engines: tuple = ("native",), reduction: str = "sum",
             analyzer_class: type | None = None):
    """Decorator registering a recipe builder under ``name``; its keyword arguments (with their
    defaults) are the method's parameters and its docstring's first line its description.
    ``reduction`` ("sum" or "max_abs") is how its maps are reduced over channels;
    ``analyzer_class`` a NativeAnalyzer subclass for methods with extra state (None: the default)."""
    def decorator(build):
        parameters = {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(build).parameters.values()
        }
        description = (inspect.getdoc(build) or "").split("\n")[0]
        # A worker engine may have declared the name first (declare_engine_method).
        declared = _REGISTRY[name].engines if name in _REGISTRY else ()
        engines_all = tuple(engines) + tuple(e for e in declared if e not in engines)
        _REGISTRY[name] = Method(name, family, build, engines_all, parameters, description, reduction,
                                 analyzer_class)
        return build
    return decorator


def declare_engine_method(engine: str, name: str, family: str, parameters: dict | None = None,
                          description: str = "", **fields) -> None:
    """Declare that the non-native ``engine`` offers the method ``name`` (for :func:`list_analyzers`).

    A registered name gains ``engine`` in its ``engines``; a new name is registered with the given
    family, parameters, description (and other ``Method`` fields that exist, e.g. ``reduction``),
    and the native engine refuses it with an error naming the engines that offer it.
    """
    if name in _REGISTRY:
        method = _REGISTRY[name]
        if engine not in method.engines:
            _REGISTRY[name] = dataclasses.replace(method, engines=tuple(method.engines) + (engine,))
        return

    def build(**params):
        offered = [e for e in _REGISTRY[name].engines if e != "native"]
        raise ValueError(f"{name} is not available in the native engine; use "
                         f"{' or '.join(f'engine={e!r}' for e in offered)}")
    known = {f.name for f in dataclasses.fields(Method)}
    extra = {key: value for key, value in fields.items() if key in known}
    _REGISTRY[name] = Method(name=name, family=family, build=build, engines=(engine,),
                             parameters=dict(parameters or {}), description=description, **extra)


def get_method(name: str) -> Method:
    """The registered method called ``name``; an unknown name raises ValueError with suggestions."""
    if not isinstance(name, str):
        raise TypeError(f"the method name must be a string, got {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_analyzers() -> list:
    """All registered methods as :class:`AnalyzerInfo` (name, family, engines, parameters with
    defaults, description, channel reduction), sorted by family and name."""
    return [
        AnalyzerInfo(m.name, m.family, m.engines, dict(m.parameters), m.description, m.reduction)
        for m in sorted(_REGISTRY.values(), key=lambda m: (m.family, m.name))
    ]


# --- gradient family -----------------------------------------------------------------------------

_RELU_ONLY = ("relu", "linear")


#: iNNvestigate's ``postprocess`` values for the gradient methods.
POSTPROCESS = (None, "abs", "square")


def _postprocess(method: str, postprocess) -> str | None:
    if postprocess not in POSTPROCESS:
        raise ValueError(f"{method}: postprocess must be None, 'abs' or 'square', got {postprocess!r}")
    return postprocess


@register("gradient", "gradient", reduction="max_abs")
def gradient(postprocess=None) -> Recipe:
    """Gradient of the selected output w.r.t. the input (saliency map)."""
    return Recipe(((SELECTORS["any"], GradientRule()),), postprocess=_postprocess("gradient", postprocess))


@register("input_t_gradient", "gradient")
def input_t_gradient(postprocess=None) -> Recipe:
    """Input times gradient."""
    return Recipe(((SELECTORS["any"], GradientRule()),), times_input=True,
                  postprocess=_postprocess("input_t_gradient", postprocess))


@register("deconvnet", "gradient", reduction="max_abs")
def deconvnet() -> Recipe:
    """Deconvnet: ReLUs act on the backward signal (Zeiler & Fergus 2014)."""
    rules = ((SELECTORS["activation"], DeconvRule()), (SELECTORS["any"], GradientRule()))
    # iNNvestigate starts Deconvnet and Guided Backprop from the output value, not from 1.
    return Recipe(rules, head="value", activations=_RELU_ONLY)


@register("guided_backprop", "gradient", reduction="max_abs")
def guided_backprop() -> Recipe:
    """Guided backprop: gradient with ReLUs also applied to the backward signal (Springenberg 2015)."""
    rules = ((SELECTORS["activation"], GuidedRule()), (SELECTORS["any"], GradientRule()))
    return Recipe(rules, head="value", activations=_RELU_ONLY)


def count_parameter(method: str, name: str, value) -> int:
    """``value`` as a count >= 1; refuses 2.5, True and "3" (``int()`` would silently accept or round them)."""
    is_integer = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not is_integer or value < 1:
        raise ValueError(f"{method}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


@register("integrated_gradients", "gradient")
def integrated_gradients(reference_inputs=0.0, steps: int = 64, postprocess=None) -> Recipe:
    """Integrated gradients: (x - reference) times the mean gradient on the straight path."""
    steps = count_parameter("integrated_gradients", "steps", steps)
    return Recipe(((SELECTORS["any"], GradientRule()),),
                  augmentation=augment.StraightPath(steps, reference_inputs),
                  postprocess=_postprocess("integrated_gradients", postprocess))


@register("smoothgrad", "gradient", reduction="max_abs")
def smoothgrad(augment_by_n: int = 64, noise_scale: float = 1.0, seed: int | None = None,
               postprocess=None) -> Recipe:
    """SmoothGrad: mean gradient over inputs with Gaussian noise of std noise_scale."""
    augment_by_n = count_parameter("smoothgrad", "augment_by_n", augment_by_n)
    if not noise_scale >= 0:
        raise ValueError(f"smoothgrad: noise_scale must be >= 0, got {noise_scale}")
    return Recipe(((SELECTORS["any"], GradientRule()),),
                  augmentation=augment.GaussianNoise(augment_by_n, float(noise_scale), seed),
                  postprocess=_postprocess("smoothgrad", postprocess))


# --- LRP family ------------------------------------------------------------------------------

def _user_rules(rules) -> list:
    if rules is None:
        return []
    pairs = []
    for entry in rules:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"rules must be a list of (layer selector, rule) pairs, got entry {entry!r}")
        pairs.append((selector(entry[0]), rule_from_spec(entry[1])))
    return pairs


def lrp_recipe(kernel_rule: Rule, *, dense_rule: Rule | None = None, conv_rule: Rule | None = None,
               layer_rule: Rule | None = None, input_layer_rule=None, rules=None, lstm: bool = False) -> Recipe:
    """Recipe of an LRP method.

    Parameters
    ----------
    kernel_rule : Rule
        Rule for Dense and Conv2D layers (unless ``dense_rule`` / ``conv_rule`` override it).
    layer_rule : Rule, optional
        Rule for BatchNormalization and Add (default: ``conv_rule or kernel_rule``), treated as
        linear layers as in the paper's ResNet experiments.
    input_layer_rule : Rule, str or (low, high), optional
        Rule for the first Dense/Conv2D layer ("Flat", a box for the bounded rule, ...).
    rules : list of (selector, rule), optional
        Extra pairs tried before the method's own.
    lstm : bool
        LSTM layers get :class:`~keras_xai.lstm_rule.LSTMRule` with ``kernel_rule`` (Arras et al.'s
        LRP for LSTMs); otherwise the method has no rule for them.

    Average pooling always uses the z-rule (as in iNNvestigate); activations pass relevance on.
    """
    pairs = []
    if input_layer_rule is not None:
        pairs.append((SELECTORS["first_layer"], rule_from_spec(input_layer_rule)))
    pairs += _user_rules(rules)
    conv_rule = conv_rule or kernel_rule
    pairs += [
        (SELECTORS["average_pooling"], ZRule()),
        (SELECTORS["dense"], dense_rule or kernel_rule),
        (SELECTORS["conv"], conv_rule),
        (SELECTORS["batch_norm"], layer_rule or conv_rule),
        (SELECTORS["add"], layer_rule or conv_rule),
        (SELECTORS["activation"], PassRule()),
    ]
    if lstm:
        pairs.append((SELECTORS["lstm"], LSTMRule(kernel_rule)))
    return Recipe(tuple(pairs), head="value")


@register("lrp.z", "lrp")
def lrp_z(input_layer_rule=None, rules=None) -> Recipe:
    """LRP-z (LRP-0): relevance split in proportion to x_i w_ij, bias as an input."""
    return lrp_recipe(ZRule(), input_layer_rule=input_layer_rule, rules=rules, lstm=True)


@register("lrp.z_IB", "lrp")
def lrp_z_ignore_bias(input_layer_rule=None, rules=None) -> Recipe:
    """LRP-z ignoring the bias."""
    return lrp_recipe(ZRule(bias=False), input_layer_rule=input_layer_rule, rules=rules, lstm=True)


@register("lrp.epsilon", "lrp")
def lrp_epsilon(epsilon: float = 1e-7, bias: bool = True, input_layer_rule=None, rules=None) -> Recipe:
    """LRP-epsilon: z-rule with epsilon * sign(z) added to the denominator."""
    return lrp_recipe(EpsilonRule(float(epsilon), bool(bias)), input_layer_rule=input_layer_rule, rules=rules,
                      lstm=True)


@register("lrp.epsilon_IB", "lrp")
def lrp_epsilon_ignore_bias(epsilon: float = 1e-7, input_layer_rule=None, rules=None) -> Recipe:
    """LRP-epsilon ignoring the bias."""
    return lrp_recipe(EpsilonRule(float(epsilon), False), input_layer_rule=input_layer_rule, rules=rules,
                      lstm=True)


@register("lrp.gamma", "lrp")
def lrp_gamma(gamma: float = 0.25, bias: bool = True, input_layer_rule=None, rules=None) -> Recipe:
    """LRP-gamma: z-rule on w + gamma * w+ (favours positive contributions; Montavon et al. 2019)."""
    return lrp_recipe(GammaRule(float(gamma), bool(bias)), input_layer_rule=input_layer_rule, rules=rules)


@register("lrp.w_square", "lrp")
def lrp_w_square(input_layer_rule=None, rules=None) -> Recipe:
    """LRP with the w-square rule on every layer."""
    return lrp_recipe(WSquareRule(), input_layer_rule=input_layer_rule, rules=rules)


@register("lrp.flat", "lrp")
def lrp_flat(input_layer_rule=None, rules=None) -> Recipe:
    """LRP with the flat rule on every layer."""
    return lrp_recipe(FlatRule(), input_layer_rule=input_layer_rule, rules=rules)


def alpha_beta_parameters(alpha, beta) -> tuple:
    """Complete (alpha, beta) with alpha - beta = 1 when one is missing, and refuse pairs with
    alpha - beta != 1: only those conserve relevance (iNNvestigate requires it too). Other pairs
    remain possible as ``rules=[("kernel", AlphaBetaRule(alpha, beta))]``."""
    if alpha is None and beta is None:
        raise ValueError("lrp.alpha_beta needs alpha or beta (or both)")
    alpha = float(beta) + 1 if alpha is None else float(alpha)
    beta = alpha - 1 if beta is None else float(beta)
    if alpha < 0 or beta < 0:
        raise ValueError(f"lrp.alpha_beta needs alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}")
    if abs(alpha - beta - 1) > 1e-9:
        raise ValueError(f"lrp.alpha_beta needs alpha - beta = 1, got alpha={alpha}, beta={beta}; give one of "
                         "them and the other follows, or use rules=[('kernel', AlphaBetaRule(alpha, beta))]")
    return alpha, beta


@register("lrp.alpha_beta", "lrp")
def lrp_alpha_beta(alpha=None, beta=None, bias: bool = True, input_layer_rule=None, rules=None) -> Recipe:
    """LRP-alpha-beta with any alpha, beta (one given: the other from alpha - beta = 1)."""
    alpha, beta = alpha_beta_parameters(alpha, beta)
    return lrp_recipe(AlphaBetaRule(alpha, beta, bool(bias)), input_layer_rule=input_layer_rule, rules=rules)


def _register_alpha_beta(name, alpha, beta, bias):
    def build(input_layer_rule=None, rules=None) -> Recipe:
        return lrp_recipe(AlphaBetaRule(alpha, beta, bias), input_layer_rule=input_layer_rule, rules=rules)
    build.__doc__ = f"LRP-alpha{alpha}-beta{beta}{'' if bias else ', ignoring the bias'}."
    register(name, "lrp")(build)


_register_alpha_beta("lrp.alpha_1_beta_0", 1.0, 0.0, True)
_register_alpha_beta("lrp.alpha_1_beta_0_IB", 1.0, 0.0, False)
_register_alpha_beta("lrp.alpha_2_beta_1", 2.0, 1.0, True)
_register_alpha_beta("lrp.alpha_2_beta_1_IB", 2.0, 1.0, False)
_register_alpha_beta("lrp.alpha_5_beta_4", 5.0, 4.0, True)  # the paper's strongly inhibiting variant


@register("lrp.z_plus", "lrp")
def lrp_z_plus(input_layer_rule=None, rules=None) -> Recipe:
    """LRP-z+ (alpha 1, beta 0, no bias)."""
    return lrp_recipe(ZPlusRule(), input_layer_rule=input_layer_rule, rules=rules)


@register("lrp.z_plus_fast", "lrp")
def lrp_z_plus_fast(input_layer_rule=None, rules=None) -> Recipe:
    """LRP-z+ assuming non-negative inputs (positive weights only)."""
    return lrp_recipe(ZPlusFastRule(), input_layer_rule=input_layer_rule, rules=rules)


def _register_preset(name, alpha, beta, flat):
    def build(epsilon: float = 0.1, input_layer_rule=None, rules=None) -> Recipe:
        if flat and input_layer_rule not in (None, "Flat"):
            raise ValueError(f"{name} always uses the Flat input layer rule; got input_layer_rule={input_layer_rule!r}")
        return lrp_recipe(
            AlphaBetaRule(alpha, beta), dense_rule=EpsilonRule(float(epsilon)),
            input_layer_rule="Flat" if flat else input_layer_rule, rules=rules,
        )
    build.__doc__ = (f"LRP alpha{alpha:g}-beta{beta:g} on convolutions, epsilon on dense layers"
                     f"{', flat rule on the first layer' if flat else ''}.")
    register(name, "lrp")(build)


_register_preset("lrp.sequential_preset_a", 1.0, 0.0, False)
_register_preset("lrp.sequential_preset_b", 2.0, 1.0, False)
_register_preset("lrp.sequential_preset_a_flat", 1.0, 0.0, True)
_register_preset("lrp.sequential_preset_b_flat", 2.0, 1.0, True)


@register("lrp.cmp", "lrp")
def lrp_cmp(alpha: float = 1.0, beta: float = 0.0, epsilon: float = 1e-10, input_layer_rule=None,
            rules=None) -> Recipe:
    """LRP-CMP (Kohlbrenner et al. 2019; "When Explanations Lie"): alpha-beta on convolutions,
    BatchNorm and Add, epsilon 1e-10 on dense layers."""
    alpha, beta = alpha_beta_parameters(alpha, beta)
    return lrp_recipe(AlphaBetaRule(alpha, beta), dense_rule=EpsilonRule(float(epsilon)),
                      input_layer_rule=input_layer_rule, rules=rules)


# --- Deep Taylor -------------------------------------------------------------------------------

def _deep_taylor_rules(first_layer_rule=None) -> tuple:
    pairs = [(SELECTORS["first_layer"], first_layer_rule)] if first_layer_rule is not None else []
    pairs += [
        (SELECTORS["kernel"], ZPlusRule()),
        (SELECTORS["batch_norm"], WSquareRule()),  # diagonal: passes relevance through
        (SELECTORS["add"], ZPlusRule()),
        (SELECTORS["average_pooling"], GradientRule()),
        (SELECTORS["fused_activation"], PassRule()),
        (SELECTORS["activation"], GradientRule()),
    ]
    return tuple(pairs)


@register("deep_taylor", "deep_taylor")
def deep_taylor() -> Recipe:
    """Deep Taylor decomposition for ReLU nets, unbounded input (z+ rule everywhere)."""
    return Recipe(_deep_taylor_rules(), head="relu_value", activations=_RELU_ONLY)


@register("deep_taylor.bounded", "deep_taylor")
def deep_taylor_bounded(low=None, high=None) -> Recipe:
    """Deep Taylor decomposition with the z^B rule for inputs in [low, high] on the first layer."""
    if low is None or high is None:
        raise ValueError("deep_taylor.bounded needs both low and high (the input range), e.g. low=-128, high=128")
    return Recipe(_deep_taylor_rules(BoundedRule(float(low), float(high))), head="relu_value",
                  activations=_RELU_ONLY)
