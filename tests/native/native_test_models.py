"""Small Keras models for the native engine tests (imported by conftest and the test modules)."""
from __future__ import annotations

import numpy as np
from tensorflow import keras

L = keras.layers


def randomize(model: keras.Model, seed: int, bias_scale: float = 0.1) -> keras.Model:
    """Fresh random weights: kernels keep their shape and Glorot-like scale, biases become
    N(0, bias_scale), BatchNorm statistics random (variance > 0)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for variable, value in zip(layer.weights, layer.get_weights()):
            name = variable.name.split("/")[-1]
            if "kernel" in name:
                fan = np.prod(value.shape[:-1])
                weights.append(rng.normal(0, np.sqrt(2.0 / fan), value.shape))
            elif "moving_variance" in name:
                weights.append(rng.uniform(0.5, 2.0, value.shape))
            elif "gamma" in name:
                weights.append(rng.normal(1.0, 0.5, value.shape))
            else:  # bias, beta, moving_mean
                weights.append(rng.normal(0, bias_scale, value.shape))
        layer.set_weights([w.astype(np.float32) for w in weights])
    return model


def cifar_net(input_shape=(32, 32, 3), num_classes=10) -> keras.Sequential:
    """Appendix-D CIFAR net (layer names of the paper), ending in softmax."""
    from architectures.models import cifar_net as build
    return build(input_shape, num_classes)


def cifar_net_logits(seed: int = 1) -> keras.Model:
    from keras_xai import model_wo_softmax
    return model_wo_softmax(randomize(cifar_net(), seed))


def vgg_style_net(seed: int = 2) -> keras.Sequential:
    """VGG-like: fused-ReLU convolutions in two blocks, max pooling, two dense layers."""
    model = keras.Sequential([
        L.InputLayer(input_shape=(32, 32, 3), name="input"),
        L.Conv2D(16, 3, padding="same", activation="relu", name="block1_conv1"),
        L.Conv2D(16, 3, padding="same", activation="relu", name="block1_conv2"),
        L.MaxPooling2D(2, name="block1_pool"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv1"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv2"),
        L.MaxPooling2D(2, name="block2_pool"),
        L.Flatten(name="flatten"),
        L.Dense(64, activation="relu", name="fc1"),
        L.Dropout(0.5, name="drop1"),
        L.Dense(10, name="predictions"),
    ], name="vgg_style")
    return randomize(model, seed)


def dense_net(seed=0, bias_scale=0.1):
    inputs = keras.Input((8,), name="input")
    hidden = L.Dense(6, activation="relu", name="fc1")(inputs)
    outputs = L.Dense(4, name="fc2")(hidden)
    return randomize(keras.Model(inputs, outputs, name="dense"), seed, bias_scale)


def conv_net(seed=0, bias_scale=0.1):
    inputs = keras.Input((8, 8, 3), name="input")
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(3, name="fc")(x)
    return randomize(keras.Model(inputs, outputs, name="conv"), seed, bias_scale)


def pooling_net(seed=0, bias_scale=0.1):
    inputs = keras.Input((8, 8, 3), name="input")
    x = L.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = L.Activation("relu", name="relu1")(x)
    x = L.MaxPooling2D(2, name="max_pool")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.AveragePooling2D(2, name="avg_pool")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(3, name="fc")(x)
    return randomize(keras.Model(inputs, outputs, name="pooling"), seed, bias_scale)


def residual_net(seed=0, bias_scale=0.1):
    """Residual block with BatchNorm, a Concatenate, Reshape and a Dropout."""
    inputs = keras.Input((8, 8, 3), name="input")
    stem = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    x = L.Conv2D(4, 3, padding="same", name="branch_conv1")(stem)
    x = L.BatchNormalization(name="branch_bn")(x)
    x = L.Activation("relu", name="branch_relu")(x)
    x = L.Conv2D(4, 3, padding="same", name="branch_conv2")(x)
    x = L.Add(name="add")([stem, x])
    x = L.Activation("relu", name="add_relu")(x)
    side = L.MaxPooling2D(2, name="side_pool")(stem)
    x = L.MaxPooling2D(2, name="main_pool")(x)
    x = L.Concatenate(name="concat")([x, side])
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.5, name="dropout")(x)
    x = L.Reshape((4, 32), name="reshape")(x)
    x = L.Dense(2, name="fc_last_axis")(x)
    outputs = L.Flatten(name="out")(x)
    return randomize(keras.Model(inputs, outputs, name="residual"), seed, bias_scale)


def batchnorm_net(seed=0, bias_scale=0.1):
    inputs = keras.Input((6, 6, 2), name="input")
    x = L.Conv2D(3, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="relu")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    outputs = L.Dense(3, name="fc")(x)
    return randomize(keras.Model(inputs, outputs, name="batchnorm"), seed, bias_scale)


#: Builders of the shared test matrix.
TINY_MODELS = {
    "dense": dense_net, "conv": conv_net, "pooling": pooling_net,
    "residual": residual_net, "batchnorm": batchnorm_net,
}

#: Parameters a method needs to be created (all others run with defaults).
REQUIRED_PARAMS = {
    "deep_taylor.bounded": {"low": -3.0, "high": 3.0},
    "lrp.alpha_beta": {"alpha": 3.0},
    "smoothgrad": {"augment_by_n": 4, "seed": 0},
    "integrated_gradients": {"steps": 4},
    # q = 98 thresholds at the maximum in layers of <= 25 units (nothing passes): a lower percentile.
    "rect_grad": {"percentile": 80.0},
}


def params_for(method: str) -> dict:
    return dict(REQUIRED_PARAMS.get(method, {}))
