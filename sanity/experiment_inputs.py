"""What the experiments run on: the model-ready images and their provenance (:class:`ExperimentInputs`),
PatternNet's patterns fitted on or given for a model's weights, and one analyzer per method
(:class:`AnalyzerPool`) whose analyses :func:`saliency_maps` reduces to the 2-D maps the paper compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tensorflow import keras

import keras_xai

from . import metrics, run_key
from .methods import MethodSpec


@dataclass
class ExperimentInputs:
    """Model-ready images and what the experiments need to know about them."""

    images: np.ndarray  # float32 (n, h, w, c) or (n, time steps, features), preprocessed for the model
    labels: np.ndarray  # int (n,) true classes
    indices: np.ndarray  # int (n,) position in the source data set (provenance, per-image seeds)
    input_range: tuple  # (low, high) of valid inputs: DTD's box and SmoothGrad's noise scale
    fit_images: np.ndarray | None = None  # training images for methods that learn (PatternNet)
    # Fitted patterns per model-weights digest: PatternNet and PatternAttribution share one fit.
    pattern_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # Weights digest -> digest of the patterns the user gave for those weights (use_patterns).
    given_patterns: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.images = np.asarray(self.images, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        if not (len(self.images) == len(self.labels) == len(self.indices)):
            raise ValueError(f"images ({len(self.images)}), labels ({len(self.labels)}) and indices "
                             f"({len(self.indices)}) must have the same length")
        if len(np.unique(self.indices)) != len(self.indices):
            raise ValueError("indices must be unique: they name the per-image result files")


def fitted_patterns(model: keras.Model, inputs: ExperimentInputs, progress: bool = False) -> dict:
    """PatternNet's patterns (two-component estimator) fitted on ``inputs.fit_images`` for the model's
    current weights; fitted once per weights and reused by every experiment that gets the same inputs."""
    if inputs.fit_images is None:
        raise ValueError("PatternNet / PatternAttribution learn patterns from data: pass fit_images in ExperimentInputs")
    key = run_key.weights_digest(model)
    if key not in inputs.pattern_cache:
        analyzer = keras_xai.create_analyzer("pattern.net", model)
        inputs.pattern_cache[key] = dict(analyzer.fit(inputs.fit_images, verbose=progress).patterns)
    return inputs.pattern_cache[key]


def use_patterns(model: keras.Model, inputs: ExperimentInputs, patterns) -> None:
    """Use given patterns ({layer: array} or a ``.npz`` saved by ``PatternAnalyzer.save_patterns``)
    for the model's current weights instead of fitting them."""
    if not isinstance(patterns, dict):
        analyzer = keras_xai.create_analyzer("pattern.net", model, patterns=patterns)  # loads and checks shapes
        patterns = dict(analyzer.patterns)
    weights = run_key.weights_digest(model)
    inputs.pattern_cache[weights] = patterns
    inputs.given_patterns[weights] = run_key.digest(*(patterns[name] for name in sorted(patterns)))


class AnalyzerPool:
    """One analyzer per method for one model, created on first use (traces are reused)."""

    def __init__(self, model: keras.Model, inputs: ExperimentInputs, engine: str = "native"):
        self.model, self.inputs, self.engine = model, inputs, engine
        self._analyzers = {}

    def get(self, spec: MethodSpec):
        if spec.label not in self._analyzers:
            parameters = spec.parameters(self.inputs.input_range)
            if spec.needs_fit:
                parameters["patterns"] = fitted_patterns(self.model, self.inputs)
            self._analyzers[spec.label] = keras_xai.create_analyzer(spec.analyzer, self.model, engine=self.engine,
                                                                    **parameters)
        return self._analyzers[spec.label]


def saliency_maps(analyzer, x: np.ndarray, classes: np.ndarray, spec: MethodSpec) -> np.ndarray:
    """2-D maps (n, h, w): the analysis of ``classes`` reduced over channels as the paper does. Inputs
    without a channel axis (the LSTM's rows of pixels, (n, time steps, features)) are one channel."""
    analysis = analyzer.analyze(x, neuron_selection=np.asarray(classes))
    if analysis.ndim == 3:
        analysis = analysis[..., None]
    return metrics.reduce_channels(analysis, spec.reduction)
