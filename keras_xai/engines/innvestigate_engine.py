"""``engine="innvestigate"``: iNNvestigate 2.1.2 in a worker process, with the native engine's API.

Every analyzer of iNNvestigate 2.1.2 is available by its own name and parameters, plus
``lrp.z_IB``, ``lrp.epsilon_IB``, ``lrp.cmp`` (this package's names) and ``rect_grad``
(RectGrad, Kim et al. 2019, on iNNvestigate's reverse machinery). What the worker adds to
iNNvestigate (see :mod:`keras_xai.engines.innvestigate_rules`):

- residual support as the authors of "When Explanations Lie" added it: ``Add`` is a linear layer
  with identity weights and ``BatchNormalization`` a per-channel affine layer, and the analyzer's own
  rule (alpha-beta, z+, epsilon, ...) is applied to both (upstream applies the z-rule to ``Add``, and
  its fused BatchNorm kernel uses variance squared). ``residual_rules=False`` keeps upstream's
  treatment;
- one output unit per sample (``neuron_selection``), relevances at every layer's output, and
  injection of a vector at any layer (``propagate_from``);
- ``smoothgrad`` and ``integrated_gradients`` computed on top of the gradient analyzer (upstream's
  wrappers fail on BatchNorm models); SmoothGrad honours ``noise_scale`` (upstream ignores it) and
  takes a ``seed``.
"""
from __future__ import annotations

from keras_xai.engines.base import WorkerAnalyzer

ENGINE = "innvestigate"

#: Keyword arguments every iNNvestigate network analyzer accepts.
_NETWORK = {"disable_model_checks": False, "allow_lambda_layers": False}
#: ... and those of the analyzers that reverse the network.
_REVERSE = dict(_NETWORK, reverse_clip_values=False, reverse_project_bottleneck_layers=False,
                reverse_check_min_max_values=False, reverse_check_finite=False)
#: LRP options (besides the rule, which the named analyzers fix).
_LRP = dict(_REVERSE, input_layer_rule=None, until_layer_idx=None, until_layer_rule=None,
            bn_layer_fuse_mode="one_linear")
#: Options of this engine, accepted by every method.
ENGINE_OPTIONS = {"residual_rules": True}

#: name -> (family, own parameters with defaults, description). iNNvestigate 2.1.2's
#: ``innvestigate.analyzer.analyzers`` plus this package's extra names.
METHODS = {
    "input": ("misc", dict(_NETWORK), "The input itself (iNNvestigate's Input analyzer)."),
    "random": ("misc", dict(_NETWORK, stddev=1.0), "Gaussian noise shaped like the input."),
    "gradient": ("gradient", dict(_REVERSE, postprocess=None), "Gradient of the selected output."),
    "gradient.baseline": ("gradient", dict(_NETWORK, postprocess=None),
                          "Gradient by tf.gradients (iNNvestigate's BaselineGradient)."),
    "input_t_gradient": ("gradient", dict(_REVERSE, postprocess=None), "Input times gradient."),
    "deconvnet": ("gradient", dict(_REVERSE), "Deconvnet (Zeiler & Fergus 2014)."),
    "guided_backprop": ("gradient", dict(_REVERSE), "Guided backprop (Springenberg et al. 2015)."),
    "integrated_gradients": ("gradient", dict(_REVERSE, steps=64, reference_inputs=0.0, postprocess=None),
                             "Integrated gradients (left Riemann sum, as iNNvestigate)."),
    "smoothgrad": ("gradient", dict(_REVERSE, augment_by_n=64, noise_scale=1.0, postprocess=None, seed=None),
                   "SmoothGrad: mean gradient over noisy copies."),
    "rect_grad": ("gradient", dict(_REVERSE, percentile=98.0),
                  "RectGrad (Kim et al. 2019): gradient passed at a ReLU only where activation "
                  "x gradient exceeds its percentile-th percentile in the layer."),
    "lrp": ("lrp", dict(_LRP, rule=None, bn_layer_rule=None), "LRP with any rule(s) (iNNvestigate's LRP)."),
    "lrp.z": ("lrp", dict(_LRP), "LRP-z."),
    "lrp.z_IB": ("lrp", dict(_LRP), "LRP-z ignoring the bias."),
    "lrp.epsilon": ("lrp", dict(_LRP, epsilon=1e-7, bias=True), "LRP-epsilon."),
    "lrp.epsilon_IB": ("lrp", dict(_LRP, epsilon=1e-7), "LRP-epsilon ignoring the bias."),
    "lrp.w_square": ("lrp", dict(_LRP), "LRP with the w-square rule."),
    "lrp.flat": ("lrp", dict(_LRP), "LRP with the flat rule."),
    "lrp.alpha_beta": ("lrp", dict(_LRP, alpha=None, beta=None, bias=True), "LRP-alpha-beta."),
    "lrp.alpha_2_beta_1": ("lrp", dict(_LRP), "LRP-alpha2-beta1."),
    "lrp.alpha_2_beta_1_IB": ("lrp", dict(_LRP), "LRP-alpha2-beta1 ignoring the bias."),
    "lrp.alpha_1_beta_0": ("lrp", dict(_LRP), "LRP-alpha1-beta0."),
    "lrp.alpha_1_beta_0_IB": ("lrp", dict(_LRP), "LRP-alpha1-beta0 ignoring the bias."),
    "lrp.z_plus": ("lrp", dict(_LRP), "LRP-z+."),
    "lrp.z_plus_fast": ("lrp", dict(_LRP), "LRP-z+ for non-negative inputs."),
    "lrp.sequential_preset_a": ("lrp", dict(_LRP, epsilon=0.1, bn_layer_rule=None),
                                "Alpha1-beta0 on convolutions, epsilon on dense layers."),
    "lrp.sequential_preset_b": ("lrp", dict(_LRP, epsilon=0.1, bn_layer_rule=None),
                                "Alpha2-beta1 on convolutions, epsilon on dense layers."),
    "lrp.sequential_preset_a_flat": ("lrp", dict(_REVERSE, epsilon=0.1, bn_layer_rule=None),
                                     "Preset A with the flat rule on the first layer."),
    "lrp.sequential_preset_b_flat": ("lrp", dict(_REVERSE, epsilon=0.1, bn_layer_rule=None),
                                     "Preset B with the flat rule on the first layer."),
    "lrp.sequential_preset_b_flat_until_idx": ("lrp", dict(_REVERSE, epsilon=0.1, until_layer_idx=None),
                                               "Preset B with the flat rule up to a layer index."),
    "lrp.cmp": ("lrp", dict(_LRP, alpha=1.0, beta=0.0, epsilon=1e-10),
                "LRP-CMP: alpha-beta on convolutions, BatchNorm and Add, epsilon on dense layers."),
    "deep_taylor": ("deep_taylor", dict(_REVERSE), "Deep Taylor decomposition (z+ rule)."),
    "deep_taylor.bounded": ("deep_taylor", dict(_REVERSE, low=None, high=None),
                            "Deep Taylor decomposition with the z^B rule on the first layer."),
}

#: Parameters whose values must be plain data to travel to the worker.
_PLAIN_TYPES = (str, int, float, bool, type(None), tuple, list)


def _plain(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN_TYPES) or hasattr(value, "__array__")


class InnvestigateAnalyzer(WorkerAnalyzer):
    """An iNNvestigate 2.1.2 analyzer run in the worker process; see :mod:`keras_xai.engines.innvestigate_engine`.

    Extra parameters: ``residual_rules`` (default True: the analyzer's rule on ``Add`` and
    ``BatchNormalization``), ``timeout`` (seconds per call).
    """

    engine = ENGINE
    worker_module = "keras_xai.engines.innvestigate_worker_main"
    engine_options = ENGINE_OPTIONS

    def _validate_params(self, params: dict) -> None:
        if self.name not in METHODS:
            raise ValueError(f"the innvestigate engine has no method {self.name!r}; it offers "
                             f"{', '.join(sorted(METHODS))}")
        allowed = dict(METHODS[self.name][1], **ENGINE_OPTIONS)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            hint = ""
            if "rules" in unknown:
                hint = " ('rules' with layer selectors is a native-engine option; use the package's own rule options)"
            if "q" in unknown and self.name == "rect_grad":
                hint = " (the percentile is called 'percentile', as in the native engine)"
            raise TypeError(f"{self.name} (engine='innvestigate') got unexpected parameter(s) {unknown}; "
                            f"it accepts {sorted(allowed)}{hint}")
        for key, value in params.items():
            if not _plain(value):
                raise TypeError(
                    f"{self.name}: parameter {key}={value!r} cannot be sent to the innvestigate worker; "
                    "give rules by name (e.g. 'Z', 'Epsilon', 'Flat', 'Alpha1Beta0') and boxes as (low, high)"
                )
        if self.name == "deep_taylor.bounded" and (params.get("low") is None or params.get("high") is None):
            raise ValueError("deep_taylor.bounded needs both low and high (the input range), e.g. low=-128, high=128")
        if self.name == "rect_grad" and not 0 <= float(params.get("percentile", 98.0)) <= 100:
            raise ValueError(f"rect_grad: percentile is a percentage in [0, 100], got {params['percentile']}")


def create(method, model, **params) -> InnvestigateAnalyzer:
    """Factory registered as ``engine="innvestigate"``."""
    return InnvestigateAnalyzer(method, model, **params)
