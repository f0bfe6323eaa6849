"""Keras LSTM layers in the native engine, against the NumPy float64 classifier of ``numpy_lstm.py``
(forward pass, gradient by back-propagation through time, LRP for LSTMs) and against tf.GradientTape on
the Keras model, on tiny stacked LSTMs of several sizes and seeds."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from keras_xai import UnsupportedLayerError
from numpy_lstm import NumpyLSTMClassifier, lrp_lstm, lstm_deeplift, lstm_forward

#: (time steps, features, units of lstm1, units of lstm2, classes)
SIZES = [(5, 4, 3, 3, 2), (9, 6, 10, 4, 3), (28, 28, 10, 10, 10)]
SEEDS = [0, 1, 2]


def classifier(steps, features, first, second, classes, seed, dtype="float32", biases=True):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((steps, features), name="rows", dtype=dtype),
                              keras.layers.LSTM(first, return_sequences=True, name="lstm1", dtype=dtype),
                              keras.layers.LSTM(second, name="lstm2", dtype=dtype),
                              keras.layers.Dense(classes, name="logits", dtype=dtype)])
    weights = [rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()]
    if not biases:
        weights = [w if w.ndim > 1 else np.zeros_like(w) for w in weights]
    model.set_weights(weights)
    return model


def _x(steps, features, seed, n=3):
    return np.random.default_rng(100 + seed).uniform(size=(n, steps, features))


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_gradient_equals_bptt_in_numpy_and_the_tape_on_a_float64_keras_model(size):
    for seed in SEEDS:
        model = classifier(*size, seed, dtype="float64")
        x = _x(*size[:2], seed)
        analyzer = keras_xai.create_analyzer("gradient", model, dtype="float64")
        ours = analyzer.analyze(x, neuron_selection=1)
        reference = NumpyLSTMClassifier(model)
        np.testing.assert_allclose(ours, np.stack([reference.gradient(xi, 1) for xi in x]), rtol=1e-9, atol=1e-13)
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logit = model(inputs)[:, 1]
        np.testing.assert_allclose(ours, tape.gradient(logit, inputs).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method, epsilon", [("lrp.z", None), ("lrp.epsilon", 0.01)])
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_lrp_equals_numpy_signal_take_all(size, method, epsilon):
    model = classifier(*size, 0)
    params = {} if epsilon is None else {"epsilon": epsilon}
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", **params)
    for seed in SEEDS:
        model.set_weights(classifier(*size, seed).get_weights())  # the analyzer reads live weights
        x = _x(*size[:2], seed)
        reference = NumpyLSTMClassifier(model)
        units = np.argmax(np.stack([reference.forward(xi)[2] for xi in x]), axis=1)
        expected = np.stack([reference.lrp(xi, unit, epsilon) for xi, unit in zip(x, units)])
        np.testing.assert_allclose(analyzer.analyze(x), expected, rtol=1e-9, atol=1e-12, err_msg=f"seed {seed}")


def test_lrp_ignoring_biases_equals_numpy():
    size = SIZES[1]
    model = classifier(*size, 3)
    x = _x(*size[:2], 3)
    reference = NumpyLSTMClassifier(model)
    units = np.argmax(np.stack([reference.forward(xi)[2] for xi in x]), axis=1)
    expected = np.stack([reference.lrp(xi, unit, None, bias=False) for xi, unit in zip(x, units)])
    np.testing.assert_allclose(keras_xai.create_analyzer("lrp.z_IB", model, dtype="float64").analyze(x), expected,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_lrp_z_conserves_the_logit_without_biases(size):
    model = classifier(*size, 4, biases=False)
    x = _x(*size[:2], 4)
    maps = keras_xai.create_analyzer("lrp.z", model, dtype="float64").analyze(x)
    logits = NumpyLSTMClassifier(model)
    explained = np.array([logits.forward(xi)[2].max() for xi in x])
    np.testing.assert_allclose(maps.reshape(len(x), -1).sum(axis=1), explained, rtol=1e-9)


def test_relevance_injected_at_lstm2_or_lstm1_reaches_lower_time_steps_and_the_input():
    size = SIZES[1]
    model = classifier(*size, 5)
    x = _x(*size[:2], 5)
    vectors = np.random.default_rng(6).normal(size=(len(x), size[3]))
    paths = keras_xai.create_analyzer("lrp.epsilon", model, epsilon=0.01, dtype="float64").propagate_from(
        x, "lstm2", vectors)
    reference = NumpyLSTMClassifier(model)
    for xi, vector, at_lstm1, at_input in zip(x, vectors, paths["lstm1"], paths["rows"]):
        expected_lstm1, expected_input = reference.lrp_from_lstm2(xi, vector, 0.01)
        np.testing.assert_allclose(at_lstm1, expected_lstm1, rtol=1e-9, atol=1e-12)  # (time steps, units)
        np.testing.assert_allclose(at_input, expected_input, rtol=1e-9, atol=1e-12)
    at_every_step = np.random.default_rng(7).normal(size=(len(x), size[0], size[2]))  # lstm1: (time steps, units)
    from_lstm1 = keras_xai.create_analyzer("lrp.epsilon", model, epsilon=0.01, dtype="float64").propagate_from(
        x, "lstm1", at_every_step)["rows"]
    for xi, injected, at_input in zip(x, at_every_step, from_lstm1):
        first = lstm_forward(xi, reference.W1, reference.U1, reference.b1)
        np.testing.assert_allclose(at_input, lrp_lstm(first, reference.W1, reference.U1, injected, 0.01), rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_deeplift_rescale_equals_numpy_and_sums_to_the_delta(size):
    model = classifier(*size, 0)
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64")
    for seed in SEEDS:
        model.set_weights(classifier(*size, seed).get_weights())
        x = _x(*size[:2], seed)
        x[0, :2] = 0.0  # rows equal to the reference: Rescale's derivative fallback inside the gates
        reference = NumpyLSTMClassifier(model)
        units = np.arange(len(x)) % size[4]
        expected = np.stack([reference.deeplift(xi, unit) for xi, unit in zip(x, units)])
        ours = analyzer.analyze(x, neuron_selection=units)
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12, err_msg=f"seed {seed}")
        delta = [reference.forward(xi)[2][unit] - reference.forward(np.zeros_like(xi))[2][unit]
                 for xi, unit in zip(x, units)]
        np.testing.assert_allclose(ours.reshape(len(x), -1).sum(axis=1), delta, rtol=1e-9, atol=1e-12)
        for name, contributions in analyzer.contributions(x, neuron_selection=units).items():  # every layer
            np.testing.assert_allclose(np.asarray(contributions).reshape(len(x), -1).sum(axis=1), delta, rtol=1e-9,
                                       atol=1e-12, err_msg=name)


def test_deeplift_with_a_reference_input_and_injected_at_lstm2():
    size = SIZES[1]
    model = classifier(*size, 5)
    x, baseline = _x(*size[:2], 5), np.random.default_rng(9).uniform(size=size[:2])
    reference = NumpyLSTMClassifier(model)
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64", reference=baseline)
    np.testing.assert_allclose(analyzer.analyze(x, neuron_selection=2),
                               np.stack([reference.deeplift(xi, 2, baseline) for xi in x]), rtol=1e-9, atol=1e-12)
    ours = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64")
    vector = np.zeros((len(x), size[3]))
    vector[:, 1] = 1.0  # the multiplier of lstm2's unit 1 = DeepLIFT of a model ending at it
    paths = ours.propagate_from(x, "lstm2", vector)
    for xi, at_input in zip(x, paths["rows"]):
        first, second, _ = reference.forward(xi)
        first0, second0, _ = reference.forward(np.zeros_like(xi))
        m_h2 = np.zeros_like(second["h"])
        m_h2[-1, 1] = 1.0
        m_h1 = lstm_deeplift(second, second0, reference.W2, reference.U2, m_h2)
        np.testing.assert_allclose(at_input, lstm_deeplift(first, first0, reference.W1, reference.U1, m_h1) * xi,
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["deep_lift.reveal_cancel", "deep_lift.ablation"])
def test_deeplift_variants_without_an_lstm_rule_refuse(method):
    with pytest.raises(UnsupportedLayerError, match=rf"'lstm1' \(LSTM\) has no rule in {method}.*deep_lift.rescale"):
        keras_xai.create_analyzer(method, classifier(*SIZES[0], 0))


@pytest.mark.parametrize("method", ["gradient", "input_t_gradient", "integrated_gradients", "smoothgrad", "lrp.z",
                                    "lrp.epsilon", "deep_lift.rescale"])
def test_saturated_gates_and_zero_inputs_give_finite_maps(method):
    model = classifier(*SIZES[2], 7)
    model.set_weights([w * 40 for w in model.get_weights()])  # every gate at 0 or 1, tanh at +-1
    x = np.concatenate([np.zeros((1, 28, 28)), _x(28, 28, 7, n=2)])
    params = {"steps": 4} if method == "integrated_gradients" else {"augment_by_n": 4, "seed": 0} \
        if method == "smoothgrad" else {}
    maps = keras_xai.create_analyzer(method, model, **params).analyze(x.astype(np.float32))
    assert np.isfinite(maps).all()


def test_methods_without_an_lstm_rule_refuse_naming_the_layer_and_the_methods_that_have_one():
    model = classifier(*SIZES[0], 0)
    with pytest.raises(UnsupportedLayerError, match=r"'lstm1' \(LSTM\).*no rule in lrp.alpha_1_beta_0.*lrp.epsilon"):
        keras_xai.create_analyzer("lrp.alpha_1_beta_0", model)
    with pytest.raises(UnsupportedLayerError, match="'lstm1'.*sigmoids and tanh; guided_backprop is only defined"):
        keras_xai.create_analyzer("guided_backprop", model)


@pytest.mark.parametrize("flag", ["go_backwards", "stateful"])
def test_unsupported_lstm_settings_are_refused_by_name(flag):
    model = keras.Sequential([keras.Input((4, 3), batch_size=2), keras.layers.LSTM(2, name="backwards", **{flag: True}),
                              keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match=f"'backwards' \\(LSTM\\).*{flag}=True"):
        keras_xai.create_analyzer("gradient", model)
