"""Thesis section 5.2.3: the LSTM autoencoder, the LSTM VAE, a classifier trained on VAE samples, and a
decoder from the classifier's hidden state ``h`` to the image (the visualiser the thesis proposed).

Trained weights go to the project's weight cache (``$KERAS_XAI_HOME/models/lstm_svd-*.weights.npz``),
keyed by every setting that changes them, so a second run loads instead of training.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from tensorflow import keras
from tqdm.auto import tqdm

from architectures import cache, models
from keras_xai.graph import shape_of

from . import metrics


@dataclass(frozen=True)
class FitSettings:
    """Everything that changes a trained generative model (the cache key is a hash of these)."""

    model: str
    epochs: int
    n_train: int
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    units: int = 64
    latent_dim: int = 16
    extra: str = ""  # e.g. the fingerprint of the classifier whose states a decoder reads

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def path(self):
        return cache.home() / "models" / f"lstm_svd-{self.model}-{self.key()}-seed{self.seed}{cache.SUFFIX}"


class EpochBar(keras.callbacks.Callback):
    """One tqdm bar over epochs showing the latest loss (Keras' own output is switched off)."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        super().__init__()
        self.bar = tqdm(total=total, desc=description, disable=not enabled, leave=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4g}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def cached_fit(model: keras.Model, settings: FitSettings, fit: Callable[[], dict], log=print) -> dict:
    """Load ``model``'s weights from the cache, or run ``fit()`` (returns metadata) and cache the result."""
    path = settings.path()
    metadata = cache.load(model, path)
    if metadata is not None:
        return {**metadata, "source": str(path)}
    log(f"training {settings.model} ({settings.epochs} epochs on {settings.n_train} images); cache: {path}")
    keras.utils.set_random_seed(settings.seed)
    started = time.perf_counter()
    metadata = {"settings": asdict(settings), **fit(), "train_seconds": round(time.perf_counter() - started, 1)}
    cache.save(model, path, metadata)
    return {**metadata, "source": "trained"}


def _history(history: keras.callbacks.History) -> dict:
    return {name: [float(v) for v in values] for name, values in history.history.items()}


# --------------------------------------------------------------------------------------- autoencoder
def train_autoencoder(x_train: np.ndarray, epochs: int, seed: int = 0, units: int = 64, latent_dim: int = 16,
                      batch_size: int = 128, learning_rate: float = 1e-3, progress: bool = True, log=print) -> tuple:
    """The LSTM autoencoder (``architectures.models.lstm_autoencoder``) trained to reconstruct the rows
    with per-pixel binary cross-entropy and Adam. Returns ``(model, metadata)``."""
    settings = FitSettings("autoencoder", epochs, len(x_train), batch_size, learning_rate, seed, units, latent_dim)
    keras.utils.set_random_seed(seed)
    model = models.lstm_autoencoder(units=units, latent_dim=latent_dim)

    def fit():
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="binary_crossentropy")
        history = model.fit(x_train, x_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                            callbacks=[EpochBar(epochs, "autoencoder epochs", progress)])
        return {"history": _history(history)}

    return model, cached_fit(model, settings, fit, log)


def collapse_statistics(reconstructions: np.ndarray, images: np.ndarray, mean_image: np.ndarray) -> dict:
    """Does an autoencoder output the same image for every input (thesis fig. 5.1)?

    ``relative_spread``: mean over pixels of the standard deviation across reconstructions divided by
    the same for the inputs (0 = one output for all inputs, 1 = as varied as the data).
    ``mse`` vs ``mse_mean_image``: reconstruction error against the error of always answering the mean
    training image. ``distance_to_mean_image``: mean RMS distance of the reconstructions to that image.
    """
    reconstructions = np.asarray(reconstructions, np.float64).reshape(len(images), -1)
    images = np.asarray(images, np.float64).reshape(len(images), -1)
    mean_image = np.asarray(mean_image, np.float64).reshape(-1)
    return {
        "mse": float(np.mean((reconstructions - images) ** 2)),
        "mse_mean_image": float(np.mean((mean_image - images) ** 2)),
        "relative_spread": float(reconstructions.std(axis=0).mean() / images.std(axis=0).mean()),
        "distance_to_mean_image": float(np.sqrt(((reconstructions - mean_image) ** 2).mean(axis=1)).mean()),
        "inputs_distance_to_mean_image": float(np.sqrt(((images - mean_image) ** 2).mean(axis=1)).mean()),
    }


# ---------------------------------------------------------------------------------------------- VAE
class ProbeReconstructions(keras.callbacks.Callback):
    """Reconstructions of a few fixed images after every epoch (thesis fig. 5.3), from the mean code."""

    def __init__(self, probes: np.ndarray):
        super().__init__()
        self.probes, self.per_epoch = probes, []

    def on_epoch_end(self, epoch, logs=None):
        mean, _ = self.model.get_layer("encoder")(self.probes, training=False)
        images = self.model.get_layer("decoder")(mean, training=False).numpy()
        self.per_epoch.append(np.rint(255 * images).astype(np.uint8).tolist())


def train_vae(x_train: np.ndarray, epochs: int, seed: int = 0, units: int = 64, latent_dim: int = 16,
              batch_size: int = 128, learning_rate: float = 3e-3, probes: np.ndarray | None = None,
              progress: bool = True, log=print) -> tuple:
    """The LSTM VAE (``architectures.models.lstm_vae``), loss = summed pixel cross-entropy + KL (the
    negative ELBO), Adam. Returns ``(model, metadata)``; ``metadata["probe_reconstructions"]`` holds
    uint8 reconstructions of ``probes`` after each epoch.

    The learning rate 3e-3 reached a lower loss than 1e-3 in the same wall time (4 epochs on 10,000
    images: 173 vs 192 nats); the thesis does not give its settings."""
    settings = FitSettings("vae", epochs, len(x_train), batch_size, learning_rate, seed, units, latent_dim)
    keras.utils.set_random_seed(seed)
    model = models.lstm_vae(units=units, latent_dim=latent_dim)

    def fit():
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=models.pixel_cross_entropy)
        callbacks = [EpochBar(epochs, "VAE epochs", progress)]
        recorder = ProbeReconstructions(probes) if probes is not None else None
        history = model.fit(x_train, x_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                            callbacks=callbacks + ([recorder] if recorder else []))
        return {"history": _history(history),
                "probe_reconstructions": recorder.per_epoch if recorder else []}

    return model, cached_fit(model, settings, fit, log)


def vae_codes(model: keras.Model, x: np.ndarray, batch_size: int = 1000) -> tuple:
    """Means and log-variances of q(z | x)."""
    mean, log_variance = model.get_layer("encoder").predict(x, batch_size=batch_size, verbose=0)
    return mean, log_variance


def vae_elbo_terms(model: keras.Model, x: np.ndarray, seed: int = 0) -> dict:
    """Average reconstruction cross-entropy (one reparameterised sample) and KL on ``x``, in nats."""
    mean, log_variance = vae_codes(model, x)
    noise = np.random.default_rng(seed).standard_normal(mean.shape).astype(np.float32)
    z = models.reparameterize(mean, log_variance, noise).numpy()
    reconstructions = model.get_layer("decoder").predict(z, batch_size=1000, verbose=0)
    reconstruction = models.pixel_cross_entropy(x, reconstructions).numpy()
    kl = models.kl_divergence(mean, log_variance).numpy()
    return {"reconstruction_nats": float(reconstruction.mean()), "kl_nats": float(kl.mean()),
            "negative_elbo_nats": float((reconstruction + kl).mean())}


def generate(model: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` images decoded from z ~ N(0, I) (thesis appendix fig. 14)."""
    latent_dim = shape_of(model.get_layer("decoder").inputs[0])[-1]
    z = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    return model.get_layer("decoder").predict(z, batch_size=1000, verbose=0)


def sample_classifier_model(hidden: tuple = (400, 784), n_classes: int = 10, pixels: int = 784) -> keras.Model:
    """The thesis' best classifier on VAE samples: dense layers of 400 and 784 units (ReLU), then logits."""
    model = keras.Sequential([keras.Input(shape=(pixels,), name="pixels")], name="sample_classifier")
    for i, units in enumerate(hidden):
        model.add(keras.layers.Dense(units, activation="relu", name=f"dense{i + 1}"))
    model.add(keras.layers.Dense(n_classes, name="logits"))
    return model


def train_on_vae_samples(vae: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                         y_test: np.ndarray, epochs: int = 10, seed: int = 0, batch_size: int = 128,
                         baseline: bool = True, progress: bool = True) -> dict:
    """Thesis section 5.2.3: a classifier trained only on images the VAE decoder generated, tested on
    the real MNIST test set (thesis: 92.90%).

    Every training image is encoded, one code is drawn from q(z | x) (eq. 5.1) and decoded; the
    decoded image keeps the label of the image it came from. With ``baseline`` the same classifier
    is also trained on the real training images for comparison.
    """
    mean, log_variance = vae_codes(vae, x_train)
    noise = np.random.default_rng(seed).standard_normal(mean.shape).astype(np.float32)
    samples = vae.get_layer("decoder").predict(models.reparameterize(mean, log_variance, noise).numpy(),
                                                batch_size=1000, verbose=0)
    flat_test = x_test.reshape(len(x_test), -1)

    def fit_and_test(inputs: np.ndarray, description: str) -> tuple:
        keras.utils.set_random_seed(seed)
        classifier = sample_classifier_model()
        classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        classifier.fit(inputs.reshape(len(inputs), -1), y_train, batch_size=batch_size, epochs=epochs, verbose=0,
                       callbacks=[EpochBar(epochs, description, progress)])
        predicted = np.argmax(classifier.predict(flat_test, batch_size=1000, verbose=0), axis=1)
        return metrics.confusion_matrix(y_test, predicted), classifier

    confusion, _ = fit_and_test(samples, "classifier on VAE samples")
    result = {"accuracy": metrics.accuracy(confusion), "confusion": confusion, "epochs": epochs,
              "n_samples": len(samples), "example_samples": samples[:20], "example_labels": y_train[:20]}
    if baseline:
        real_confusion, _ = fit_and_test(x_train, "same classifier on real images")
        result["baseline_accuracy_real_images"] = metrics.accuracy(real_confusion)
    return result


# ---------------------------------------------------------------------- decoder of the classifier's h
def state_decoder_model(hidden_size: int = 10, units: int = 400, timesteps: int = 28, features: int = 28):
    """h (the classifier's last hidden state) -> image: Dense(units, ReLU), Dense(784, sigmoid)."""
    return keras.Sequential([
        keras.Input(shape=(hidden_size,), name="hidden_state"),
        keras.layers.Dense(units, activation="relu", name="decoder_hidden"),
        keras.layers.Dense(timesteps * features, activation="sigmoid", name="decoder_pixels"),
        keras.layers.Reshape((timesteps, features), name="image"),
    ], name="state_decoder")


def train_state_decoder(hidden_train: np.ndarray, x_train: np.ndarray, epochs: int, classifier_fingerprint: str,
                        seed: int = 0, batch_size: int = 128, progress: bool = True, log=print) -> tuple:
    """Learn to draw the image from the classifier's final hidden state (the visualiser of thesis
    section 5.2.3, step 3, trained directly on h instead of through the VAE's latent space).
    Returns ``(model, metadata)``."""
    settings = FitSettings("state_decoder", epochs, len(x_train), batch_size, 1e-3, seed,
                           units=400, latent_dim=hidden_train.shape[1], extra=classifier_fingerprint)
    keras.utils.set_random_seed(seed)
    model = state_decoder_model(hidden_train.shape[1])

    def fit():
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=models.pixel_cross_entropy)
        history = model.fit(hidden_train, x_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                            callbacks=[EpochBar(epochs, "h -> image decoder epochs", progress)])
        return {"history": _history(history)}

    return model, cached_fit(model, settings, fit, log)
