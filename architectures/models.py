"""Model definitions: the paper's appendix-D CIFAR net, VGG-16, ResNet-50, and the thesis' LSTM models."""
from __future__ import annotations

import os
from pathlib import Path

from tensorflow import keras
from tensorflow.keras import layers

from .weights import SUFFIXES, MissingWeightsFileError, load_weights_file

CIFAR_NET_LAYER_NAMES = (
    "conv1", "relu1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4", "relu4", "pool4",
    "flatten", "dropout5", "fc5", "relu5", "dropout6", "fc6", "softmax",
)


def cifar_net(input_shape: tuple = (32, 32, 3), num_classes: int = 10) -> keras.Sequential:
    """The CIFAR-10 network of Sixt et al. (2020), appendix D, layer for layer and name for name.

    ``input_shape=(28, 28, 1)`` gives the same network for MNIST. The model ends in a softmax
    layer named ``softmax``; explain it with ``keras_xai.model_wo_softmax(model)``.
    """
    model = keras.Sequential(name="cifar_net")
    model.add(keras.Input(shape=tuple(input_shape), name="input"))
    model.add(layers.Conv2D(32, (3, 3), padding="same", name="conv1"))
    model.add(layers.Activation("relu", name="relu1"))
    model.add(layers.Conv2D(64, (3, 3), padding="same", name="conv2"))
    model.add(layers.Activation("relu", name="relu2"))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), name="pool2"))
    model.add(layers.Conv2D(128, (3, 3), padding="same", name="conv3"))
    model.add(layers.Activation("relu", name="relu3"))
    model.add(layers.Conv2D(128, (3, 3), padding="same", name="conv4"))
    model.add(layers.Activation("relu", name="relu4"))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), name="pool4"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dropout(0.5, name="dropout5"))
    model.add(layers.Dense(1024, name="fc5"))
    model.add(layers.Activation("relu", name="relu5"))
    model.add(layers.Dropout(0.5, name="dropout6"))
    model.add(layers.Dense(num_classes, name="fc6"))
    model.add(layers.Activation("softmax", name="softmax"))
    return model


def _application_weights(weights, name: str):
    """Split ``weights`` into what Keras applications accept and a local file to load afterwards."""
    if weights is None or weights == "imagenet":
        return weights, None
    path = Path(os.fspath(weights)).expanduser()
    if not path.exists():
        raise MissingWeightsFileError(
            f"{name}: weights must be 'imagenet', None or an existing weights or model file "
            f"({', '.join(SUFFIXES)}); {path} does not exist"
        )
    return None, path


def _build_application(constructor, name: str, weights):
    keras_weights, local_file = _application_weights(weights, name)
    try:
        model = constructor(weights=keras_weights)
    except Exception as error:
        if keras_weights == "imagenet":
            raise RuntimeError(
                f"{name}: could not download the ImageNet weights ({type(error).__name__}: {error}). "
                "Without internet, download the Keras applications .h5 file elsewhere and pass its path "
                f"as weights=..., or put it in ~/.keras/models/."
            ) from error
        raise
    if local_file is not None:
        load_weights_file(model, local_file)
    return model


def vgg16(weights="imagenet") -> keras.Model:
    """Keras applications' VGG-16 (layer names ``block1_conv1`` ... ``fc1``, ``fc2``, ``predictions``).

    ``weights``: ``"imagenet"`` (downloads), a local weights or model file (``.h5``, ``.weights.h5``,
    ``.keras``; see :func:`architectures.weights.load_weights_file`), or ``None`` (random init).
    Expects caffe-preprocessed 224x224 BGR input (``architectures.data.caffe_preprocess``).
    """
    return _build_application(keras.applications.VGG16, "VGG-16", weights)


def resnet50(weights="imagenet") -> keras.Model:
    """Keras applications' ResNet-50 (``conv1_conv``, ``conv2_block1_*`` ..., ``predictions``)."""
    return _build_application(keras.applications.ResNet50, "ResNet-50", weights)


def lstm_classifier(hidden_size: int = 10, num_classes: int = 10, pytorch_style: bool = False) -> keras.Sequential:
    """The thesis' classifier: two stacked LSTM(10) over 28 rows of 28 pixels, then Dense(10) logits.

    ``pytorch_style=True`` initialises like ``torch.nn.LSTM``/``nn.Linear`` (all weights and biases
    uniform in +-1/sqrt(hidden), no forget-gate bias of 1), the framework the thesis used.
    Keras' default is Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases with
    the forget gate's set to 1.
    """
    dense_kwargs = {}
    if pytorch_style:
        bound = hidden_size ** -0.5

        def uniform():  # a fresh instance per weight: a reused unseeded instance repeats its values
            return keras.initializers.RandomUniform(-bound, bound)

        # torch has two bias vectors (b_ih + b_hh); their sum is a triangular distribution on +-2/sqrt(h).
        def lstm_kwargs():
            return dict(kernel_initializer=uniform(), recurrent_initializer=uniform(),
                        bias_initializer=_SumOfTwoUniform(bound), unit_forget_bias=False)

        dense_kwargs = dict(kernel_initializer=uniform(), bias_initializer=uniform())
    else:
        def lstm_kwargs():
            return {}
    model = keras.Sequential(name="lstm_classifier")
    model.add(keras.Input(shape=(28, 28), name="rows"))
    model.add(layers.LSTM(hidden_size, return_sequences=True, name="lstm1", **lstm_kwargs()))
    model.add(layers.LSTM(hidden_size, name="lstm2", **lstm_kwargs()))
    model.add(layers.Dense(num_classes, name="logits", **dense_kwargs))
    return model


@keras.utils.register_keras_serializable(package="architectures")
class _SumOfTwoUniform(keras.initializers.Initializer):
    """Sum of two independent U(-bound, bound) draws: the effective bias of a PyTorch LSTM."""

    def __init__(self, bound: float, seed: int | None = None):
        self.bound = float(bound)
        self.seed = seed

    def __call__(self, shape, dtype=None, **kwargs):
        import tensorflow as tf

        second_seed = None if self.seed is None else self.seed + 1
        first = tf.random.uniform(shape, -self.bound, self.bound, dtype=dtype or tf.float32, seed=self.seed)
        second = tf.random.uniform(shape, -self.bound, self.bound, dtype=dtype or tf.float32, seed=second_seed)
        return first + second

    def get_config(self):
        return {"bound": self.bound, "seed": self.seed}


# ------------------------------------------------------------ thesis section 5.2.3: LSTM autoencoders
def lstm_autoencoder(units: int = 64, latent_dim: int = 16, timesteps: int = 28, features: int = 28) -> keras.Model:
    """The thesis' LSTM autoencoder: 2-layer LSTM encoder, 2-layer LSTM decoder + dense (section 5.2.3).

    Encoder: LSTM(units) over the rows, then LSTM(latent_dim) whose last hidden state is the code.
    Decoder: the code repeated for every row, LSTM(units), LSTM(units), and a sigmoid Dense per row.
    The two halves are nested models: ``model.get_layer("encoder")``, ``model.get_layer("decoder")``.
    """
    encoder = keras.Sequential([
        keras.Input(shape=(timesteps, features), name="rows"),
        layers.LSTM(units, return_sequences=True, name="encoder_lstm1"),
        layers.LSTM(latent_dim, name="encoder_lstm2"),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.Input(shape=(latent_dim,), name="code"),
        layers.RepeatVector(timesteps, name="repeat"),
        layers.LSTM(units, return_sequences=True, name="decoder_lstm1"),
        layers.LSTM(units, return_sequences=True, name="decoder_lstm2"),
        layers.TimeDistributed(layers.Dense(features, activation="sigmoid"), name="pixels"),
    ], name="decoder")
    inputs = keras.Input(shape=(timesteps, features), name="rows")
    return keras.Model(inputs, decoder(encoder(inputs)), name="lstm_autoencoder")


def reparameterize(mean, log_variance, noise):
    """z = mu + sigma * eps with sigma = exp(log_variance / 2) (thesis eq. 5.1)."""
    import tensorflow as tf

    return mean + tf.exp(0.5 * log_variance) * noise


def kl_divergence(mean, log_variance):
    """KL(N(mu, sigma^2) || N(0, I)) per sample: -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)."""
    import tensorflow as tf

    return -0.5 * tf.reduce_sum(1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=-1)


def pixel_cross_entropy(images, reconstructions):
    """Binary cross-entropy summed over all pixels of each image: the VAE's reconstruction term."""
    import tensorflow as tf

    per_pixel = keras.backend.binary_crossentropy(tf.cast(images, reconstructions.dtype), reconstructions)
    return tf.reduce_sum(tf.reshape(per_pixel, (tf.shape(per_pixel)[0], -1)), axis=-1)


@keras.utils.register_keras_serializable(package="architectures")
class Reparameterize(layers.Layer):
    """Draws z = mu + sigma * eps, eps ~ N(0, I), and adds ``kl_weight`` * mean KL to the model's losses."""

    def __init__(self, kl_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.kl_weight = float(kl_weight)

    def call(self, inputs):
        import tensorflow as tf

        mean, log_variance = inputs
        self.add_loss(self.kl_weight * tf.reduce_mean(kl_divergence(mean, log_variance)))
        return reparameterize(mean, log_variance, tf.random.normal(tf.shape(mean), dtype=mean.dtype))

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight}


def lstm_vae(units: int = 64, latent_dim: int = 16, decoder_units: int = 400, timesteps: int = 28,
             features: int = 28, kl_weight: float = 1.0) -> keras.Model:
    """The thesis' LSTM VAE: 2-layer LSTM encoder to mean and log-variance, reparameterisation,
    2-layer dense decoder (section 5.2.3, eq. 5.1).

    ``model.get_layer("encoder")`` maps rows to ``[mean, log_variance]``; ``model.get_layer("decoder")``
    maps a code z to an image (timesteps x features, sigmoid). The KL term is added by the
    :class:`Reparameterize` layer; compile with ``loss=pixel_cross_entropy`` for the full ELBO.
    """
    rows = keras.Input(shape=(timesteps, features), name="rows")
    hidden = layers.LSTM(units, return_sequences=True, name="encoder_lstm1")(rows)
    hidden = layers.LSTM(units, name="encoder_lstm2")(hidden)
    mean = layers.Dense(latent_dim, name="mean")(hidden)
    log_variance = layers.Dense(latent_dim, name="log_variance")(hidden)
    encoder = keras.Model(rows, [mean, log_variance], name="encoder")
    decoder = keras.Sequential([
        keras.Input(shape=(latent_dim,), name="code"),
        layers.Dense(decoder_units, activation="relu", name="decoder_hidden"),
        layers.Dense(timesteps * features, activation="sigmoid", name="decoder_pixels"),
        layers.Reshape((timesteps, features), name="image"),
    ], name="decoder")
    inputs = keras.Input(shape=(timesteps, features), name="rows")
    code = Reparameterize(kl_weight, name="reparameterize")(encoder(inputs))
    return keras.Model(inputs, decoder(code), name="lstm_vae")
