"""The same model built with Keras 2 (tf-keras) and Keras 3 in one process: keras_xai reads each by its
own class, whichever Keras ``tensorflow.keras`` is, and explains both with the same numbers."""
import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from keras_xai import graph
from native_test_models import randomize

tf_keras = pytest.importorskip("tf_keras", reason="tf-keras (Keras 2 on TF 2.16+) is not installed")
if not keras.__version__.startswith("3."):
    pytest.skip("tensorflow.keras is Keras 2 here: there is no second Keras", allow_module_level=True)

METHODS = [info.name for info in keras_xai.list_analyzers() if "native" in info.engines]


def residual_block(K):
    """Functional net with every family the engine knows: Conv2D, BatchNorm, Add, pooling, Dense."""
    L = K.layers
    inputs = K.Input((8, 8, 3), name="input")
    stem = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    x = L.BatchNormalization(name="bn")(stem)
    x = L.Conv2D(4, 3, padding="same", name="conv")(x)
    x = L.Add(name="add")([stem, x])
    x = L.ReLU(name="relu")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.3, name="dropout")(x)
    outputs = L.Dense(3, activation="softmax", name="fc")(x)
    return K.Model(inputs, outputs, name="residual_block")


@pytest.fixture(scope="module")
def twins():
    """(Keras 3 logits model, tf-keras logits model) with identical weights."""
    modern = randomize(residual_block(keras), seed=3)
    legacy = residual_block(tf_keras)
    legacy.set_weights(modern.get_weights())
    return keras_xai.model_wo_softmax(modern), keras_xai.model_wo_softmax(legacy)


def test_each_model_is_read_with_its_own_keras(twins):
    modern, legacy = twins
    assert graph.keras_major(modern) == 3 and graph.keras_major(legacy) == 2
    assert graph.keras_of(legacy) is tf_keras
    assert [n.name for n in graph.read_model(modern).nodes] == [n.name for n in graph.read_model(legacy).nodes]
    assert graph.output_layer(legacy).name == "fc_logits"
    assert graph.weights_suffix(modern) == ".weights.h5" and graph.weights_suffix(legacy) == ".h5"


@pytest.mark.parametrize("method", METHODS)
def test_same_attributions_on_both_kerases(twins, method):
    from native_test_models import params_for
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    maps = []
    for model in twins:
        analyzer = keras_xai.create_analyzer(method, model, **params_for(method))
        if hasattr(analyzer, "fit"):
            analyzer.fit(np.random.default_rng(1).normal(size=(32, 8, 8, 3)).astype(np.float32))
        maps.append(analyzer.analyze(x))
    np.testing.assert_array_equal(maps[0], maps[1])  # lrp.gamma too, since it evaluates W + gamma W+ in one pass


def test_a_layer_class_of_either_keras_selects_its_layers(twins):
    from keras_xai.rules import ZRule
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype(np.float32)
    maps = []
    for model, K in zip(twins, (keras, tf_keras)):
        plain = keras_xai.create_analyzer("lrp.epsilon", model, epsilon=1.0).analyze(x)
        z_at_dense = keras_xai.create_analyzer("lrp.epsilon", model, epsilon=1.0,
                                               rules=[(K.layers.Dense, ZRule())]).analyze(x)
        assert np.abs(plain - z_at_dense).max() > 1e-3 * np.abs(plain).max(), "the Dense rule was not applied"
        maps.append(z_at_dense)
    np.testing.assert_array_equal(maps[0], maps[1])
