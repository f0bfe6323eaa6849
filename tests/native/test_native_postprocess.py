"""iNNvestigate's ``postprocess`` ("abs" / "square") of the gradient methods, against tf.GradientTape.

iNNvestigate applies it to the gradient at the input: per augmented copy (SmoothGrad, Integrated
Gradients) and before the multiplication by the input (Input x Gradient, Integrated Gradients).
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_xai
from native_test_models import TINY_MODELS

POSTPROCESS = {"abs": np.abs, "square": np.square}


@pytest.fixture(scope="module")
def conv():
    model = TINY_MODELS["conv"](seed=5)
    x = np.random.default_rng(5).normal(size=(3, *model.inputs[0].shape[1:]))
    return model, x


def tape_gradients(model, x, units) -> np.ndarray:
    """d logit[unit] / d x per sample (the model computes in float32)."""
    x = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = tf.cast(model(tf.cast(x, tf.float32)), tf.float64)
        selected = tf.gather(logits, units, axis=1, batch_dims=1)
    return tape.gradient(selected, x).numpy()


def gradient64(model, x, units) -> np.ndarray:
    return keras_xai.create_analyzer("gradient", model, dtype="float64").analyze(x, neuron_selection=units)


@pytest.mark.parametrize("postprocess", ["abs", "square"])
def test_gradient_and_input_times_gradient(conv, postprocess):
    model, x = conv
    units = np.array([0, 2, 1])
    gradient = gradient64(model, x, units)
    np.testing.assert_allclose(gradient, tape_gradients(model, x, units), rtol=1e-5, atol=1e-7)
    post = POSTPROCESS[postprocess](gradient)
    ours = keras_xai.create_analyzer("gradient", model, dtype="float64", postprocess=postprocess)
    np.testing.assert_allclose(ours.analyze(x, neuron_selection=units), post, rtol=1e-12)
    # The input's entry of relevances() is the analysis; the other layers are not postprocessed.
    relevances = ours.relevances(x, neuron_selection=units)
    plain = keras_xai.create_analyzer("gradient", model, dtype="float64").relevances(x, neuron_selection=units)
    np.testing.assert_allclose(relevances["input"], post, rtol=1e-12)
    hidden = [name for name in plain if name != "input"]
    assert hidden and any((plain[name] < 0).any() for name in hidden)
    for name in hidden:
        np.testing.assert_array_equal(relevances[name], plain[name])
    times_input = keras_xai.create_analyzer("input_t_gradient", model, dtype="float64", postprocess=postprocess)
    np.testing.assert_allclose(times_input.analyze(x, neuron_selection=units), x * post, rtol=1e-12)


@pytest.mark.parametrize("postprocess", ["abs", "square"])
def test_augmented_methods_postprocess_every_copy(conv, postprocess):
    model, x = conv
    units = np.array([1, 1, 0])
    f = POSTPROCESS[postprocess]
    # SmoothGrad: the mean of postprocessed gradients at the same noisy copies (the seed fixes them).
    generator = np.random.default_rng(4)
    noisy = [x + generator.normal(0.0, 0.5, size=x.shape) for _ in range(6)]
    expected = np.mean([f(gradient64(model, copy, units)) for copy in noisy], axis=0)
    smoothgrad = keras_xai.create_analyzer("smoothgrad", model, dtype="float64", augment_by_n=6, noise_scale=0.5,
                                           seed=4, postprocess=postprocess)
    np.testing.assert_allclose(smoothgrad.analyze(x, neuron_selection=units), expected, rtol=1e-10)
    # Integrated gradients: (x - x0) times the mean postprocessed gradient on the path (left sum).
    reference = 0.25
    path = [reference + (x - reference) * k / 5 for k in range(5)]
    expected = (x - reference) * np.mean([f(gradient64(model, point, units)) for point in path], axis=0)
    integrated = keras_xai.create_analyzer("integrated_gradients", model, dtype="float64", steps=5,
                                           reference_inputs=reference, postprocess=postprocess)
    np.testing.assert_allclose(integrated.analyze(x, neuron_selection=units), expected, rtol=1e-10)
    # The postprocessed mean differs from the postprocessed plain mean (the order matters).
    plain = keras_xai.create_analyzer("smoothgrad", model, dtype="float64", augment_by_n=6, noise_scale=0.5, seed=4)
    assert np.abs(f(plain.analyze(x, neuron_selection=units)) - smoothgrad.analyze(x, neuron_selection=units)).max() > 1e-6


@pytest.mark.parametrize("method", ["gradient", "input_t_gradient", "integrated_gradients", "smoothgrad"])
def test_unknown_postprocess_is_refused(method):
    model = TINY_MODELS["dense"]()
    with pytest.raises(ValueError, match=rf"{method}: postprocess must be None, 'abs' or 'square', got 'sqrt'"):
        keras_xai.create_analyzer(method, model, postprocess="sqrt")


def test_methods_without_postprocess_refuse_it():
    with pytest.raises(TypeError, match=r"guided_backprop got unexpected parameter\(s\) \['postprocess'\]"):
        keras_xai.create_analyzer("guided_backprop", TINY_MODELS["dense"](), postprocess="abs")
