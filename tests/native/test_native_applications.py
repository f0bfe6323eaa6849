"""Keras applications (VGG-16, ResNet-50, random weights, small inputs): every layer type of the
paper's ImageNet models goes through the engine. Slow: tracing ResNet-50 takes a while."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def resnet50():
    return keras_xai.model_wo_softmax(keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10))


@pytest.fixture(scope="module")
def vgg16():
    return keras_xai.model_wo_softmax(keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10))


def _gradient_matches_tape(model, x):
    selected = model(x).numpy().argmax(1)
    with tf.GradientTape() as tape:
        inputs = tf.constant(x)
        tape.watch(inputs)
        target = tf.reduce_sum(model(inputs) * tf.one_hot(selected, model.outputs[0].shape[-1]))
    expected = tape.gradient(target, inputs).numpy()
    ours = keras_xai.create_analyzer("gradient", model).analyze(x, neuron_selection=selected)
    assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()


def test_resnet50(resnet50):
    x = np.random.default_rng(0).normal(scale=50, size=(2, 64, 64, 3)).astype(np.float32)
    _gradient_matches_tape(resnet50, x)
    # Freshly initialised, ResNet-50 has no biases (zero biases, BatchNorm beta 0 and mean 0), so
    # the z-rule conserves the logit through every Add, BatchNorm, padding and pooling layer.
    logits = resnet50(x).numpy().max(1)
    relevance = keras_xai.create_analyzer("lrp.z", resnet50).analyze(x)
    np.testing.assert_allclose(relevance.reshape(2, -1).sum(1), logits, rtol=1e-3)
    for method in ("lrp.alpha_1_beta_0", "lrp.sequential_preset_b_flat", "deep_taylor", "lrp.cmp"):
        assert np.isfinite(keras_xai.create_analyzer(method, resnet50).analyze(x)).all(), method


def test_vgg16(vgg16):
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    _gradient_matches_tape(vgg16, x)
    for method, params in (("lrp.alpha_2_beta_1", {}), ("deep_taylor.bounded", {"low": -3, "high": 3}),
                           ("guided_backprop", {})):
        assert np.isfinite(keras_xai.create_analyzer(method, vgg16, **params).analyze(x)).all(), method
