"""keras_xai: modified back-propagation attributions for Keras models.

>>> model = keras_xai.model_wo_softmax(model)
>>> analyzer = keras_xai.create_analyzer("lrp.alpha_1_beta_0", model)
>>> attribution = analyzer.analyze(x)
"""
from keras_xai import rules
from keras_xai.analyzers import list_analyzers
from keras_xai.analyzer import create_analyzer, register_engine
from keras_xai.canonize import UnsupportedLayerError, model_wo_softmax
from keras_xai.reduction import reduce_channels
# Methods beyond iNNvestigate 2.x register themselves on import (issue 4).
from keras_xai import contrastive, deeplift, pattern, rect_grad  # noqa: E402,F401  isort: skip
from keras_xai.pattern import PatternAnalyzer, PatternsNotFittedError  # noqa: E402  isort: skip
# The innvestigate and deeplift engines (worker processes) register themselves on import.
from keras_xai import engines  # noqa: E402,F401  isort: skip

__all__ = [
    "create_analyzer", "list_analyzers", "model_wo_softmax", "reduce_channels", "register_engine", "rules",
    "UnsupportedLayerError", "PatternAnalyzer", "PatternsNotFittedError",
]
