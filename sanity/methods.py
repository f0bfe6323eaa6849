"""The attribution methods the paper evaluates, with how each saliency map is reduced to 2-D.

Labels follow the paper's figures; analyzer names and parameters follow ``keras_xai`` (iNNvestigate
names where iNNvestigate has the method). ``converges`` is the paper's finding (section 5): True for
methods whose backward matrix chain converges to rank 1 (explanations ignore later layers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras_xai


@dataclass(frozen=True)
class MethodSpec:
    label: str
    analyzer: str
    reduction: str  # "max_abs" (gradient family) or "sum" (relevance family)
    converges: bool  # the paper's finding
    params: Callable[[tuple], dict] = field(default=lambda input_range: {})  # from (low, high) of inputs
    ssim_percentiles: tuple = (0.5, 99.5)
    needs_fit: bool = False  # PatternNet / PatternAttribution learn patterns from training images
    in_csc: bool = True  # the authors left SmoothGrad out of CSC (its pass averages 50 noisy inputs)

    def parameters(self, input_range: tuple) -> dict:
        return dict(self.params(tuple(input_range)))


def _input_box(input_range):
    return {"low": float(input_range[0]), "high": float(input_range[1])}


def _smoothgrad(input_range):
    # Paper: 50 samples, noise standard deviation 0.15 x the input range.
    return {"augment_by_n": 50, "noise_scale": 0.15 * float(input_range[1] - input_range[0]), "seed": 0}


PAPER_METHODS = (
    MethodSpec("Gradient", "gradient", "max_abs", False),
    MethodSpec("SmoothGrad", "smoothgrad", "max_abs", False, _smoothgrad, in_csc=False),
    MethodSpec("GuidedBP", "guided_backprop", "max_abs", True),
    MethodSpec("Deconv", "deconvnet", "max_abs", True),
    MethodSpec("RectGrad", "rect_grad", "max_abs", True, ssim_percentiles=(0.0, 100.0)),
    MethodSpec("LRP-z", "lrp.z", "sum", False),
    MethodSpec("LRP-a1b0", "lrp.alpha_1_beta_0", "sum", True),
    MethodSpec("LRP-a2b1", "lrp.alpha_2_beta_1", "sum", True),
    MethodSpec("LRP-a5b4", "lrp.alpha_beta", "sum", True, lambda r: {"alpha": 5, "beta": 4}),
    MethodSpec("LRP-CMP-a1b0", "lrp.cmp", "sum", True, lambda r: {"alpha": 1, "beta": 0, "epsilon": 1e-10}),
    MethodSpec("LRP-CMP-a2b1", "lrp.cmp", "sum", True, lambda r: {"alpha": 2, "beta": 1, "epsilon": 1e-10}),
    MethodSpec("DTD", "deep_taylor.bounded", "sum", True, _input_box),
    MethodSpec("PatternNet", "pattern.net", "sum", True, needs_fit=True),
    MethodSpec("PatternAttribution", "pattern.attribution", "sum", True, needs_fit=True),
    MethodSpec("DeepLIFT-Rescale", "deep_lift.rescale", "sum", False),
    MethodSpec("DeepLIFT-RevealCancel", "deep_lift.reveal_cancel", "sum", False),
    MethodSpec("DeepLIFT-ablation", "deep_lift.ablation", "sum", True),
)


# Discussed in the paper (sections 3 and 6) but not in its figures: run them with --methods.
# The contrastive variants gain class sensitivity but keep the converging z+ chain below the top layer.
EXTRA_METHODS = (
    MethodSpec("ExcitationBP", "excitation_backprop", "sum", True),
    MethodSpec("ExcitationBP-contrastive", "excitation_backprop.contrastive", "sum", True),
    MethodSpec("LRP-contrastive", "lrp.contrastive", "sum", True),
    MethodSpec("InputXGradient", "input_t_gradient", "sum", False),
    MethodSpec("IntegratedGradients", "integrated_gradients", "sum", False),
    # Arras et al. (2017) explained their LSTMs with epsilon = 0.001.
    MethodSpec("LRP-epsilon", "lrp.epsilon", "sum", False, lambda r: {"epsilon": 0.001}),
)

# The methods with a rule for LSTM layers (issue 18): what --model lstm_classifier runs by default.
LSTM_METHOD_LABELS = ("Gradient", "InputXGradient", "IntegratedGradients", "LRP-epsilon", "LRP-z", "DeepLIFT-Rescale")


def by_label(labels=None, model: str = "cifar_net") -> list:
    """The specs with the given labels, in the order asked for (default: the paper's figure methods;
    on the LSTM classifier the methods that have an LSTM rule)."""
    if labels is None:
        if model != "lstm_classifier":
            return list(PAPER_METHODS)
        labels = LSTM_METHOD_LABELS
    known = {spec.label: spec for spec in PAPER_METHODS + EXTRA_METHODS}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ValueError(f"unknown method label(s) {unknown}; choose from {list(known)}")
    return [known[label] for label in labels]


def available(specs, engine: str = "native") -> tuple:
    """Split ``specs`` into (usable with ``engine``, not yet available) by ``keras_xai.list_analyzers``."""
    offered = {info.name for info in keras_xai.list_analyzers() if engine in info.engines}
    usable = [spec for spec in specs if spec.analyzer in offered]
    missing = [spec for spec in specs if spec.analyzer not in offered]
    return usable, missing


def explaining(specs, model, input_range: tuple) -> tuple:
    """Split ``specs`` into (defined on ``model``, {label: why not}), as the native engine decides:
    e.g. relu-only methods on an LSTM."""
    usable, refused = [], {}
    for spec in specs:
        try:
            keras_xai.create_analyzer(spec.analyzer, model, **spec.parameters(input_range))
        except keras_xai.UnsupportedLayerError as error:
            refused[spec.label] = str(error)
        else:
            usable.append(spec)
    return usable, refused
