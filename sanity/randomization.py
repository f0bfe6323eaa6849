"""Parameter randomization of Adebayo et al. (2018) as used by Sixt et al. (2020), figure 5 and 11.

A randomized layer gets the weights a freshly initialised model of the same architecture would have
(the layer's own Keras initializers, seeded). The user's model is never changed: every step works on
a clone.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from tensorflow import keras

from keras_xai import graph

# The authors' randomization steps, top layer first, mapped to Keras layer-name prefixes.
CASCADING_STEPS = {
    "cifar_net": ["fc6", "fc5", "conv4", "conv3", "conv2", "conv1"],
    "vgg16": ["predictions", "fc1", "block5_conv3", "block5_conv1", "block4_conv3", "block4_conv1",
              "block3_conv1", "block2_conv1", "block1_conv1"],
    "resnet50": ["predictions", "conv5_block2_", "conv4_block6_", "conv4_block1_", "conv3_block3_",
                 "conv3_block1_", "conv2_block2_", "conv1_"],
    "lstm_classifier": ["logits", "lstm2", "lstm1"],  # the thesis' LSTM (ours, issue 18)
}
PAPER_STEP_LABELS = {  # how the paper names the same steps
    "predictions": "fc3 / dense", "block5_conv3": "conv5_3", "block5_conv1": "conv5_1",
    "block4_conv3": "conv4_3", "block4_conv1": "conv4_1", "block3_conv1": "conv3_1",
    "block2_conv1": "conv2_1", "block1_conv1": "conv1_1", "conv5_block2_": "block5_2",
    "conv4_block6_": "block4_6", "conv4_block1_": "block4_1", "conv3_block3_": "block3_3",
    "conv3_block1_": "block3_1", "conv2_block2_": "block2_2", "conv1_": "conv1",
}

_INITIALIZER_OF_WEIGHT = {"kernel": "kernel_initializer", "bias": "bias_initializer",
                          "recurrent_kernel": "recurrent_initializer", "gamma": "gamma_initializer",
                          "beta": "beta_initializer", "moving_mean": "moving_mean_initializer",
                          "moving_variance": "moving_variance_initializer",
                          "depthwise_kernel": "depthwise_initializer"}


def fresh_weights(layer: keras.layers.Layer, rng: np.random.Generator) -> list:
    """Weights as the layer's initializers would draw them in a new model (seeded from ``rng``)."""
    new = []
    for weight in layer.weights:
        short = weight.name.split("/")[-1].split(":")[0]
        attribute = _INITIALIZER_OF_WEIGHT.get(short)
        initializer = getattr(layer, attribute, None) if attribute else None
        if initializer is None:
            raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): no initializer known for its "
                             f"weight '{weight.name}'; cannot randomize it")
        config = initializer.get_config()
        if "seed" in config:
            initializer = type(initializer).from_config({**config, "seed": int(rng.integers(2 ** 31))})
        value = np.asarray(initializer(tuple(weight.shape), dtype=weight.dtype))
        if short == "bias" and getattr(layer, "unit_forget_bias", False):
            # Keras' LSTM initialises its forget-gate block (i, f, c, o order) to one.
            value = value.copy()
            value[layer.units:2 * layer.units] = 1.0
        new.append(value)
    return new


def _layers_of_step(model: keras.Model, step: str) -> list:
    exact = [layer for layer in model.layers if layer.name == step]
    found = exact or [layer for layer in model.layers if layer.name.startswith(step) and layer.weights]
    if not found:
        raise ValueError(f"no layer named '{step}' (or starting with it) in model '{model.name}'; "
                         f"layers with weights: {[l.name for l in model.layers if l.weights]}")
    return found


def copy_model(model: keras.Model) -> keras.Model:
    """A new model with the architecture and the weights of ``model``, of the same Keras (2 or 3)."""
    copy = graph.keras_of(model).models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def cascading_weights(model: keras.Model, steps: Sequence[str], seed: int = 0) -> Iterator[tuple]:
    """Yield ``(step, {layer name: fresh weights})`` for the layers newly randomized at each step.

    ``steps`` are layer names or name prefixes (a ResNet block), top first. Cumulative: at step k all
    weighted layers from the output down to the lowest layer of step k are re-initialised, including
    layers between the named checkpoints. Applying the dicts in order to a copy of ``model`` gives
    the cascade; :func:`randomize_cascading` does that.
    """
    rng = np.random.default_rng(seed)
    order = {layer.name: index for index, layer in enumerate(model.layers)}
    weighted = [layer for layer in model.layers if layer.weights]
    randomized = set()
    for step in steps:
        lowest = min(order[layer.name] for layer in _layers_of_step(model, step))
        new = {}
        for layer in reversed(weighted):
            if order[layer.name] >= lowest and layer.name not in randomized:
                new[layer.name] = fresh_weights(layer, rng)
                randomized.add(layer.name)
        yield step, new


def apply_weights(model: keras.Model, weights_by_layer: dict) -> None:
    for name, weights in weights_by_layer.items():
        model.get_layer(name).set_weights(weights)


def randomize_cascading(model: keras.Model, steps: Sequence[str], seed: int = 0,
                        fresh_copies: bool = True) -> Iterator[tuple]:
    """Yield ``(step, model)`` with every weighted layer from the top down to ``step`` randomized
    (see :func:`cascading_weights`). With ``fresh_copies=False`` one private working copy is
    randomized further at each step (cheaper; a yielded model is valid until the next step).
    """
    working = copy_model(model)
    for step, new in cascading_weights(model, steps, seed):
        apply_weights(working, new)
        yield step, (copy_model(working) if fresh_copies else working)


def randomize_independent(model: keras.Model, steps: Sequence[str], seed: int = 0) -> Iterator[tuple]:
    """Yield ``(step, copy)`` with only the layers of ``step`` randomized (a fresh copy per step)."""
    rng = np.random.default_rng(seed)
    for step in steps:
        copy = copy_model(model)
        for layer in _layers_of_step(model, step):
            copy.get_layer(layer.name).set_weights(fresh_weights(layer, rng))
        yield step, copy
