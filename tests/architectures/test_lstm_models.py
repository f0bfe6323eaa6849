"""The thesis' LSTM autoencoder and VAE: structure, reparameterisation, KL and reconstruction terms."""
import numpy as np
import pytest
import tensorflow as tf

from architectures import models
from keras_xai.graph import input_names, shape_of


def test_lstm_autoencoder_structure():
    model = models.lstm_autoencoder(units=8, latent_dim=4)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert [type(layer).__name__ for layer in encoder.layers] == ["LSTM", "LSTM"]
    assert [type(layer).__name__ for layer in decoder.layers] == ["RepeatVector", "LSTM", "LSTM", "TimeDistributed"]
    assert shape_of(encoder.outputs[0]) == (None, 4) and shape_of(model.outputs[0]) == (None, 28, 28)
    assert input_names(encoder) == ["rows"] and input_names(decoder) == ["code"]
    out = model.predict(np.random.default_rng(0).random((3, 28, 28)).astype(np.float32), verbose=0)
    assert out.min() >= 0 and out.max() <= 1


def test_lstm_vae_structure_and_loss_terms():
    model = models.lstm_vae(units=8, latent_dim=3, decoder_units=16)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert [type(layer).__name__ for layer in encoder.layers[1:]] == ["LSTM", "LSTM", "Dense", "Dense"]
    assert [o.shape[-1] for o in encoder.outputs] == [3, 3]
    assert [type(layer).__name__ for layer in decoder.layers] == ["Dense", "Dense", "Reshape"]
    assert shape_of(model.outputs[0]) == (None, 28, 28) and input_names(decoder) == ["code"]
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    model(x)
    mean, log_variance = encoder(x)
    expected_kl = np.mean(0.5 * np.sum(np.exp(log_variance) + np.square(mean) - 1 - log_variance, axis=1))
    assert float(model.losses[0]) == pytest.approx(expected_kl, rel=1e-5)


def test_reparameterize_matches_the_formula():
    rng = np.random.default_rng(0)
    mean, log_variance, noise = (rng.standard_normal((5, 4)) for _ in range(3))
    z = models.reparameterize(tf.constant(mean), tf.constant(log_variance), tf.constant(noise)).numpy()
    np.testing.assert_allclose(z, mean + np.sqrt(np.exp(log_variance)) * noise, rtol=1e-12)


def test_kl_divergence_closed_form_and_monte_carlo():
    rng = np.random.default_rng(1)
    mean, log_variance = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)) * 0.5
    kl = models.kl_divergence(tf.constant(mean), tf.constant(log_variance)).numpy()
    variance = np.exp(log_variance)
    np.testing.assert_allclose(kl, 0.5 * np.sum(variance + mean ** 2 - 1 - np.log(variance), axis=1), rtol=1e-12)
    assert models.kl_divergence(tf.zeros((1, 3)), tf.zeros((1, 3))).numpy()[0] == 0.0
    # E_q[log q(z) - log p(z)] estimated by sampling z = mu + sigma * eps
    eps = rng.standard_normal((200_000, 3))
    z = mean[0] + np.sqrt(variance[0]) * eps
    log_q = -0.5 * np.sum(eps ** 2 + np.log(2 * np.pi * variance[0]), axis=1)
    log_p = -0.5 * np.sum(z ** 2 + np.log(2 * np.pi), axis=1)
    assert np.mean(log_q - log_p) == pytest.approx(kl[0], abs=0.02)


def test_reparameterize_layer_samples_with_the_right_moments():
    layer = models.Reparameterize(kl_weight=0.5)
    mean = tf.fill((50_000, 2), 3.0)
    log_variance = tf.fill((50_000, 2), np.log(0.25).astype(np.float32))
    tf.random.set_seed(0)
    z = layer([mean, log_variance]).numpy()
    assert z.mean() == pytest.approx(3.0, abs=0.01)
    assert z.std() == pytest.approx(0.5, abs=0.01)
    expected = 0.5 * 0.5 * 2 * (0.25 + 9 - 1 - np.log(0.25))
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_pixel_cross_entropy_matches_the_formula():
    rng = np.random.default_rng(2)
    images = rng.random((3, 28, 28)).astype(np.float32)
    reconstructions = np.clip(rng.random((3, 28, 28)), 0.01, 0.99).astype(np.float32)
    ours = models.pixel_cross_entropy(tf.constant(images), tf.constant(reconstructions)).numpy()
    expected = -np.sum(images * np.log(reconstructions) + (1 - images) * np.log(1 - reconstructions), axis=(1, 2))
    np.testing.assert_allclose(ours, expected, rtol=1e-4)
