"""Every method x tiny models (dense, conv, pooling, residual, BatchNorm): shape, finiteness,
determinism, no state left behind, and degenerate cases (dead ReLUs, zero input, zero relevance)."""
import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from native_test_models import TINY_MODELS, params_for

METHODS = [info.name for info in keras_xai.list_analyzers() if "native" in info.engines]


def _inputs(model, seed=0):
    return np.random.default_rng(seed).normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)


def _kill_hidden_relus(model):
    """Large negative biases before every hidden ReLU: all of them output 0."""
    for layer in model.layers[:-1]:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.full(layer.bias.shape, -100.0))


@pytest.mark.parametrize("model_name", list(TINY_MODELS))
@pytest.mark.parametrize("method", METHODS)
def test_method_on_tiny_model(method, model_name):
    model = TINY_MODELS[model_name]()
    before = [w.copy() for w in model.get_weights()]
    x = _inputs(model)
    analyzer = keras_xai.create_analyzer(method, model, **params_for(method))
    if hasattr(analyzer, "fit"):  # fitted state (patterns): 64 samples, so that each logit is > 0 somewhere
        analyzer.fit(np.random.default_rng(1).normal(size=(64, *x.shape[1:])).astype(np.float32))

    everything = analyzer.relevances(x)
    attribution = everything[model.layers[0].name]
    assert attribution.shape == x.shape and attribution.dtype == np.float32
    assert set(everything) == {layer.name for layer in model.layers}
    assert all(np.isfinite(v).all() for v in everything.values())
    np.testing.assert_array_equal(analyzer.relevances(x)[model.layers[0].name], attribution)  # deterministic
    starts_from_positive_logit = method.startswith("deep_taylor")
    if not starts_from_positive_logit or (model(x).numpy().reshape(len(x), -1).max(1) > 0).any():
        assert np.abs(attribution).max() > 0, "an all-zero map on a random model means nothing was propagated"
    assert all(np.isfinite(v).all() for v in analyzer.relevances(np.zeros_like(x)).values())
    for got, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, expected)  # the user's model is untouched

    if model_name == "residual":  # the model with every layer type: the other two compiled passes
        analysis, reported = analyzer.analyze(x, neuron_selection=1), analyzer.relevances(x, neuron_selection=1)["input"]
        if analyzer._recipe.augmentation is None:
            np.testing.assert_array_equal(analysis, reported)
        else:  # analyze sums the copies before the first layer: float32 rounding of a reordered sum
            np.testing.assert_allclose(analysis, reported, rtol=1e-5, atol=1e-6 * np.abs(reported).max())
        propagated = analyzer.propagate_from(x, "fc_last_axis", np.zeros((len(x), 4, 2)))
        assert set(propagated) == {layer.name for layer in model.layers if layer.name != "out"}
        for name, value in propagated.items():
            assert np.isfinite(value).all() and not value.any(), f"{name}: zero relevance must stay zero"

    _kill_hidden_relus(model)  # the analyzer reads the live weights: same compiled pass
    assert all(np.isfinite(v).all() for v in analyzer.relevances(x).values())


def test_same_seed_same_smoothgrad_and_new_analyzer_same_result():
    model = TINY_MODELS["conv"]()
    x = _inputs(model)
    first = keras_xai.create_analyzer("smoothgrad", model, augment_by_n=8, seed=3).analyze(x)
    second = keras_xai.create_analyzer("smoothgrad", model, augment_by_n=8, seed=3).analyze(x)
    other = keras_xai.create_analyzer("smoothgrad", model, augment_by_n=8, seed=4).analyze(x)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("model_name", list(TINY_MODELS))
@pytest.mark.parametrize("method, params", [("integrated_gradients", {"steps": 5}),
                                            ("smoothgrad", {"augment_by_n": 5, "seed": 1, "noise_scale": 0.3})])
def test_augmented_analyze_is_the_input_entry_of_relevances(model_name, method, params):
    """SmoothGrad / Integrated Gradients: analyze() and relevances() average the same per-copy passes."""
    model = TINY_MODELS[model_name]()
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", **params)
    x = _inputs(model).astype(np.float64)
    np.testing.assert_array_equal(analyzer.analyze(x), analyzer.relevances(x)[model.layers[0].name])
