"""Public API: list_analyzers, model_wo_softmax, create_analyzer options, rule choice as data."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from keras_xai import rules
from native_test_models import TINY_MODELS, cifar_net, randomize

ISSUE_METHODS = {
    "gradient", "input_t_gradient", "deconvnet", "guided_backprop", "integrated_gradients", "smoothgrad",
    "lrp.z", "lrp.epsilon", "lrp.w_square", "lrp.flat", "lrp.alpha_beta", "lrp.alpha_1_beta_0",
    "lrp.alpha_2_beta_1", "lrp.z_IB", "lrp.epsilon_IB", "lrp.alpha_1_beta_0_IB", "lrp.alpha_2_beta_1_IB",
    "lrp.z_plus", "lrp.z_plus_fast", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
    "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat", "deep_taylor", "deep_taylor.bounded",
}


def test_list_analyzers_has_every_method_with_family_and_engines():
    infos = {info.name: info for info in keras_xai.list_analyzers()}
    assert ISSUE_METHODS <= set(infos)
    assert infos["lrp.epsilon"].family == "lrp" and infos["gradient"].family == "gradient"
    assert infos["deep_taylor.bounded"].family == "deep_taylor"
    assert all("native" in infos[name].engines and infos[name].description for name in ISSUE_METHODS)
    assert infos["smoothgrad"].parameters == {"augment_by_n": 64, "noise_scale": 1.0, "seed": None, "postprocess": None}
    assert infos["integrated_gradients"].parameters["steps"] == 64


def test_model_wo_softmax_explains_logits_and_leaves_the_model_alone():
    model = randomize(cifar_net(), seed=0)
    before = [w.copy() for w in model.get_weights()]
    logits_model = keras_xai.model_wo_softmax(model)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    logits = logits_model(x).numpy()
    np.testing.assert_allclose(keras.activations.softmax(tf.constant(logits)).numpy(), model(x).numpy(), rtol=1e-5)
    assert model.layers[-1].name == "softmax" and logits_model.layers[-1].name == "fc6"
    for got, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="does not end in a softmax"):
        keras_xai.model_wo_softmax(logits_model)


def test_model_wo_softmax_with_the_softmax_fused_into_dense():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(inputs))
    logits_model = keras_xai.model_wo_softmax(model)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(keras.activations.softmax(logits_model(x)).numpy(), model(x).numpy(), rtol=1e-6)
    assert model.get_layer("probs").activation is keras.activations.softmax


def test_rule_per_layer_is_data_lrp_cmp():
    """LRP-CMP = alpha-beta on convolutions, epsilon on dense layers; the preset and an explicit
    rule list give the same result."""
    model, x = TINY_MODELS["conv"](), np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    preset = keras_xai.create_analyzer("lrp.cmp", model, alpha=2, beta=1).analyze(x)
    explicit = keras_xai.create_analyzer(
        "lrp.z", model, rules=[("conv", rules.AlphaBetaRule(2, 1)),
                               (keras.layers.Dense, rules.EpsilonRule(1e-10))]).analyze(x)
    np.testing.assert_array_equal(preset, explicit)
    plain_z = keras_xai.create_analyzer("lrp.z", model).analyze(x)
    assert not np.allclose(preset, plain_z)


def test_input_layer_rule_only_changes_the_first_layer():
    model, x = TINY_MODELS["dense"](), np.random.default_rng(0).normal(size=(2, 8))
    flat = keras_xai.create_analyzer("lrp.epsilon", model, input_layer_rule="Flat").relevances(x)
    plain = keras_xai.create_analyzer("lrp.epsilon", model).relevances(x)
    np.testing.assert_array_equal(flat["fc1"], plain["fc1"])
    assert not np.allclose(flat["input"], plain["input"])
    np.testing.assert_allclose(flat["input"], np.repeat(plain["fc1"].sum(1, keepdims=True) / 8, 8, axis=1),
                               rtol=1e-5)


def test_analyzer_reads_the_current_weights():
    model, x = TINY_MODELS["dense"](), np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    analyzer = keras_xai.create_analyzer("gradient", model)
    before = analyzer.analyze(x, neuron_selection=0)
    model.get_layer("fc1").kernel.assign(model.get_layer("fc1").kernel * 2)
    np.testing.assert_allclose(analyzer.analyze(x, neuron_selection=0), 2 * before, rtol=1e-6)


def test_analyzer_repr_and_layer_names():
    analyzer = keras_xai.create_analyzer("lrp.epsilon", TINY_MODELS["batchnorm"](), epsilon=0.1)
    assert "lrp.epsilon" in repr(analyzer) and "epsilon=0.1" in repr(analyzer)
    assert analyzer.layer_names == ["input", "conv", "bn", "relu", "flatten", "fc", "dropout"]


def test_smoothgrad_noise_scale_zero_is_the_gradient_and_ig_steps_one_is_zero():
    model, x = TINY_MODELS["conv"](), np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    gradient = keras_xai.create_analyzer("gradient", model).analyze(x)
    smooth = keras_xai.create_analyzer("smoothgrad", model, augment_by_n=3, noise_scale=0.0).analyze(x)
    # float32: the copies' sum goes through the first layer once (rounding of a sum of three, not bits)
    np.testing.assert_allclose(smooth, gradient, rtol=1e-6, atol=1e-6 * np.abs(gradient).max())
    # one left-Riemann step evaluates the gradient at the reference x itself: (x - x) * g = 0
    assert not keras_xai.create_analyzer("integrated_gradients", model, steps=1, reference_inputs=x).analyze(x).any()


def test_channel_reduction_follows_the_paper():
    infos = {info.name: info for info in keras_xai.list_analyzers()}
    assert {infos[n].reduction for n in ("gradient", "guided_backprop", "deconvnet", "smoothgrad")} == {"max_abs"}
    assert {infos[n].reduction for n in ("lrp.z", "lrp.alpha_1_beta_0", "deep_taylor")} == {"sum"}
    a = np.array([[[[1.0, -3.0]]]])
    assert keras_xai.reduce_channels(a, "sum")[0, 0, 0] == -2.0
    assert keras_xai.reduce_channels(a, "max_abs")[0, 0, 0] == 3.0
    with pytest.raises(ValueError, match="reduction"):
        keras_xai.reduce_channels(a, "mean")
