"""Models and inputs for the engine tests that the native tests do not have."""
from __future__ import annotations

import numpy as np
from tensorflow import keras

from native_test_models import randomize

L = keras.layers


def images(seed: int, shape=(4, 32, 32, 3), low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Uniform random float32 inputs."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def float64_copy(model: keras.Model) -> keras.Model:
    """The same model computing in float64 (for exact reference values such as f(x) - f(reference))."""
    config = model.get_config()
    for layer in config["layers"]:
        layer["config"]["dtype"] = "float64"
    copy = type(model).from_config(config)
    copy.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return copy


def _block(x, filters, name, stride=1, project=False):
    shortcut = x
    if project:
        shortcut = L.Conv2D(filters, 1, strides=stride, name=f"{name}_proj")(x)
        shortcut = L.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = L.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv1")(x)
    y = L.BatchNormalization(name=f"{name}_bn1")(y)
    y = L.Activation("relu", name=f"{name}_relu1")(y)
    y = L.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = L.BatchNormalization(name=f"{name}_bn2")(y)
    y = L.Add(name=f"{name}_add")([shortcut, y])
    return L.Activation("relu", name=f"{name}_out")(y)


def resnet_style_net(seed: int = 4, input_shape=(16, 16, 3), classes: int = 5) -> keras.Model:
    """ZeroPadding, strided conv, BatchNorm, two residual blocks (one with a projection shortcut),
    GlobalAveragePooling, dense logits; no max pooling."""
    inputs = keras.Input(input_shape, name="input")
    x = L.ZeroPadding2D(1, name="pad")(inputs)
    x = L.Conv2D(8, 3, strides=1, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    x = _block(x, 8, "block1")
    x = _block(x, 12, "block2", stride=2, project=True)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return randomize(keras.Model(inputs, outputs, name="resnet_style"), seed)
