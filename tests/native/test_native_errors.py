"""Bad input gives a clear ValueError/TypeError that names the problem."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from native_test_models import TINY_MODELS, cifar_net


@pytest.fixture(scope="module")
def analyzer():
    return keras_xai.create_analyzer("lrp.z", TINY_MODELS["conv"]())


def _x(n=2):
    return np.random.default_rng(0).normal(size=(n, 8, 8, 3)).astype(np.float32)


def test_wrong_rank_suggests_adding_the_batch_axis(analyzer):
    with pytest.raises(ValueError, match=r"rank 3.*\(batch, 8, 8, 3\).*x\[None\]"):
        analyzer.analyze(_x()[0])


def test_wrong_shape_names_the_axis(analyzer):
    with pytest.raises(ValueError, match=r"axis 2 is 7, expected 8"):
        analyzer.analyze(np.zeros((2, 8, 7, 3), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(analyzer, bad):
    x = _x()
    x[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match=r"1 NaN or Inf"):
        analyzer.analyze(x)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_non_float_dtype(analyzer, dtype):
    with pytest.raises(TypeError, match=r"floating-point"):
        analyzer.analyze(np.zeros((2, 8, 8, 3), dtype))


def test_empty_batch(analyzer):
    with pytest.raises(ValueError, match=r"empty batch"):
        analyzer.analyze(np.zeros((0, 8, 8, 3), np.float32))


@pytest.mark.parametrize("selection", [3, -1, [0, 7], np.array([0, 3])])
def test_neuron_index_out_of_range(analyzer, selection):
    with pytest.raises(ValueError, match=r"out of range.*3 output units"):
        analyzer.analyze(_x(), neuron_selection=selection)


@pytest.mark.parametrize("selection, error", [
    ([0, 1, 2], ValueError), ("max", ValueError), (1.0, TypeError), ([0.0, 1.0], TypeError), (True, TypeError),
])
def test_malformed_neuron_selection(analyzer, selection, error):
    with pytest.raises(error, match="neuron_selection"):
        analyzer.analyze(_x(), neuron_selection=selection)


def test_unknown_method_suggests_the_closest_names():
    with pytest.raises(ValueError, match=r"unknown method 'lrp.alpha_1_beta0'.*Did you mean 'lrp.alpha_1_beta_0'"):
        keras_xai.create_analyzer("lrp.alpha_1_beta0", TINY_MODELS["dense"]())


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(TypeError, match=r"unexpected parameter\(s\) \['epsilon'\].*alpha"):
        keras_xai.create_analyzer("lrp.alpha_beta", TINY_MODELS["dense"](), alpha=2, epsilon=1)


def test_model_ending_in_softmax_points_to_model_wo_softmax():
    with pytest.raises(ValueError, match=r"ends in a softmax.*model_wo_softmax"):
        keras_xai.create_analyzer("gradient", cifar_net())


def test_softmax_fused_into_the_last_layer_is_detected():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    with pytest.raises(ValueError, match=r"model_wo_softmax"):
        keras_xai.create_analyzer("lrp.z", model)


def test_unsupported_layer_names_layer_type_method_and_supported_types():
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(5, 3)),
                              keras.layers.GRU(4, name="gru_1"), keras.layers.Dense(2)])
    with pytest.raises(keras_xai.UnsupportedLayerError,
                       match=r"'gru_1' \(GRU\) has no rule in lrp.alpha_1_beta_0.*supported layers: .*Conv2D.*LSTM"):
        keras_xai.create_analyzer("lrp.alpha_1_beta_0", model)


def test_non_relu_activation_rejected_by_relu_only_methods():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3, activation="tanh", name="h")(inputs)))
    keras_xai.create_analyzer("gradient", model)  # fine for the gradient
    keras_xai.create_analyzer("lrp.epsilon", model)  # LRP passes relevance through any activation
    with pytest.raises(ValueError, match=r"'h' \(Dense\) uses the 'tanh' activation; guided_backprop is only defined for relu"):
        keras_xai.create_analyzer("guided_backprop", model)


def test_not_a_model():
    with pytest.raises(TypeError, match="keras.Model"):
        keras_xai.create_analyzer("gradient", lambda x: x)


def test_unknown_engine_and_a_method_the_engine_lacks():
    model = TINY_MODELS["dense"]()
    with pytest.raises(ValueError, match=r"unknown engine 'torch'"):
        keras_xai.create_analyzer("gradient", model, engine="torch")
    lacking = next(info for info in keras_xai.list_analyzers() if "innvestigate" not in info.engines)
    offered = " or ".join(f"engine={engine!r}" for engine in lacking.engines)
    with pytest.raises(ValueError, match=re.escape(f"{lacking.name} is not available in the innvestigate "
                                                   f"engine; use {offered}")):
        keras_xai.create_analyzer(lacking.name, model, engine="innvestigate")


@pytest.mark.parametrize("engine", ["innvestigate", "deeplift"])
def test_a_reference_engine_that_cannot_run_here_says_what_it_needs(engine):
    import tensorflow as tf
    from keras_xai.engines.base import EngineUnavailableError
    if importlib.util.find_spec(engine) is not None and tf.__version__.startswith("2.14."):
        pytest.skip(f"{engine} runs here (the reproduction stack)")
    method = "lrp.z" if engine == "innvestigate" else "deep_lift.rescale"
    with pytest.raises(EngineUnavailableError, match=rf"engine='{engine}' needs the package '{engine}'.*"
                                                     r"reproduction stack.*keras-xai\[engines\]"):
        keras_xai.create_analyzer(method, TINY_MODELS["dense"](), engine=engine)


def test_a_keras3_model_on_another_backend_is_refused_clearly():
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("Keras 3 only")
    pytest.importorskip("jax", reason="Keras 3's other backends need JAX (not in the test stacks)")
    script = ("import os; os.environ['KERAS_BACKEND'] = 'jax'; import keras, keras_xai\n"
              "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
              "try:\n    keras_xai.create_analyzer('gradient', model)\n"
              "except ValueError as error:\n    print(error)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               cwd=Path(__file__).resolve().parents[2])
    assert "on the 'jax' backend" in completed.stdout and "TensorFlow backend" in completed.stdout, (
        completed.stdout + completed.stderr[-2000:])


def test_bad_method_parameters():
    model = TINY_MODELS["dense"]()
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        keras_xai.create_analyzer("lrp.epsilon", model, epsilon=0)
    with pytest.raises(ValueError, match="low and high"):
        keras_xai.create_analyzer("deep_taylor.bounded", model, low=0)
    with pytest.raises(ValueError, match="low < high"):
        keras_xai.create_analyzer("lrp.z", model, input_layer_rule=(1, -1))
    with pytest.raises(ValueError, match="unknown rule 'Flatt'"):
        keras_xai.create_analyzer("lrp.z", model, input_layer_rule="Flatt")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        keras_xai.create_analyzer("lrp.z", model, dtype="float16")


def test_propagate_from_bad_layer_and_shapes(analyzer):
    with pytest.raises(ValueError, match=r"no layer 'conv9'; layers: input, conv1, flatten, fc"):
        analyzer.propagate_from(_x(), "conv9", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"relevance has shape \(2, 4\)"):
        analyzer.propagate_from(_x(), "fc", np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"relevance has 3 vectors but x has 2 samples: give one vector per sample or the same number k"):
        analyzer.propagate_from(_x(), "fc", np.zeros((3, 3)))


@pytest.mark.parametrize("method, params, message", [
    ("smoothgrad", {"augment_by_n": 2.5}, r"augment_by_n must be an integer >= 1, got 2.5"),
    ("smoothgrad", {"augment_by_n": True}, r"augment_by_n must be an integer >= 1, got True"),
    ("integrated_gradients", {"steps": "8"}, r"steps must be an integer >= 1, got '8'"),
    ("integrated_gradients", {"steps": 0}, r"steps must be an integer >= 1, got 0"),
    ("lrp.alpha_beta", {"alpha": 1, "beta": 1}, r"alpha - beta = 1, got alpha=1.0, beta=1.0"),
    ("integrated_gradients", {"reference_inputs": np.zeros((4, 4, 3))}, r"reference_inputs of shape \(4, 4, 3\) "
                                                                        r"does not fit the model's samples \(8, 8, 3\)"),
    ("integrated_gradients", {"reference_inputs": np.nan}, r"reference_inputs must be finite numbers"),
])
def test_bad_parameters_are_refused_at_creation(method, params, message):
    with pytest.raises(ValueError, match=message):
        keras_xai.create_analyzer(method, TINY_MODELS["conv"](), **params)


def test_whole_floats_and_per_sample_references_are_accepted():
    model = TINY_MODELS["conv"]()
    x = _x(2)
    counted = keras_xai.create_analyzer("integrated_gradients", model, steps=4.0).analyze(x)
    np.testing.assert_array_equal(counted, keras_xai.create_analyzer("integrated_gradients", model, steps=4).analyze(x))
    per_sample = keras_xai.create_analyzer("integrated_gradients", model, steps=4, reference_inputs=np.zeros_like(x))
    np.testing.assert_array_equal(per_sample.analyze(x), counted)
    with pytest.raises(ValueError, match=r"reference_inputs of shape \(2, 8, 8, 3\) does not broadcast to the batch "
                                         r"\(3, 8, 8, 3\)"):
        per_sample.analyze(_x(3))


def test_a_softmax_given_as_a_tensorflow_function_is_found_and_stripped():
    import tensorflow as tf
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation=tf.nn.softmax, name="probabilities")(inputs))
    with pytest.raises(ValueError, match="ends in a softmax"):
        keras_xai.create_analyzer("gradient", model)
    logits = keras_xai.model_wo_softmax(model)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(tf.nn.softmax(logits(x)).numpy(), model(x).numpy(), rtol=1e-6)
    assert keras_xai.create_analyzer("gradient", logits).analyze(x).shape == x.shape


def test_an_input_too_small_for_a_window_names_the_layer():
    inputs = keras.Input((None, None, 3), name="input")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, padding="same", strides=2, name="same_conv")(x)
    outputs = keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    analyzer = keras_xai.create_analyzer("lrp.z", keras.Model(inputs, outputs))
    assert analyzer.analyze(np.ones((1, 4, 4, 3), np.float32)).shape == (1, 4, 4, 3)  # 4 -> 2 -> 1 -> 1
    with pytest.raises(ValueError, match=r"input of size \(3, 3\) is too small for layer 'pool' \(MaxPooling2D\): "
                                         r"it receives 1x1"):
        analyzer.analyze(np.ones((1, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"input of size \(2, 5\) is too small for layer 'conv' \(Conv2D\)"):
        analyzer.relevances(np.ones((1, 2, 5, 3), np.float32))
