import os
import subprocess
import sys

import numpy as np
import pytest

from architectures import models
from keras_xai.graph import input_names, shape_of, weights_suffix

CIFAR_NET_PARAMS = {"conv1": 896, "conv2": 18_496, "conv3": 73_856, "conv4": 147_584,
                    "fc5": 8_389_632, "fc6": 10_250}


def test_cifar_net_is_appendix_d():
    model = models.cifar_net()
    assert tuple(layer.name for layer in model.layers) == models.CIFAR_NET_LAYER_NAMES
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
    assert counts == CIFAR_NET_PARAMS
    assert shape_of(model.inputs[0]) == (None, 32, 32, 3) and shape_of(model.outputs[0]) == (None, 10)
    assert input_names(model) == ["input"]
    conv = model.get_layer("conv3")
    assert conv.kernel_size == (3, 3) and conv.padding == "same" and conv.activation.__name__ == "linear"
    assert model.get_layer("dropout5").rate == 0.5
    assert model.get_layer("softmax").activation.__name__ == "softmax"


def test_cifar_net_for_mnist():
    model = models.cifar_net(input_shape=(28, 28, 1))
    assert tuple(layer.name for layer in model.layers) == models.CIFAR_NET_LAYER_NAMES
    assert model.get_layer("conv1").count_params() == 3 * 3 * 1 * 32 + 32
    assert model.get_layer("fc5").count_params() == 7 * 7 * 128 * 1024 + 1024
    probabilities = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_lstm_classifier():
    model = models.lstm_classifier()
    assert [layer.name for layer in model.layers] == ["lstm1", "lstm2", "logits"]
    assert shape_of(model.inputs[0]) == (None, 28, 28) and shape_of(model.outputs[0]) == (None, 10)
    assert input_names(model) == ["rows"]
    # LSTM parameters: 4 gates x (input + hidden + 1 bias) x hidden.
    assert [layer.count_params() for layer in model.layers] == [4 * (28 + 10 + 1) * 10, 4 * (10 + 10 + 1) * 10, 110]
    assert model.layers[-1].activation.__name__ == "linear"  # logits
    bias = model.get_layer("lstm1").get_weights()[2]
    np.testing.assert_array_equal(bias[10:20], 1.0)  # Keras: forget gate bias starts at 1


def test_lstm_classifier_pytorch_initialisation():
    model = models.lstm_classifier(pytorch_style=True)
    kernel, recurrent, bias = model.get_layer("lstm1").get_weights()
    bound = 10 ** -0.5
    assert np.abs(kernel).max() <= bound and np.abs(recurrent).max() <= bound
    assert np.abs(bias).max() <= 2 * bound and np.abs(bias).max() > bound / 4
    assert not np.allclose(bias[10:20], 1.0)
    # Every weight matrix is drawn separately (a shared unseeded initializer would repeat values).
    assert not np.allclose(kernel[:10, :], recurrent)


def test_vgg16_and_resnet50_architectures():
    vgg = models.vgg16(weights=None)
    names = {layer.name for layer in vgg.layers}
    assert {"block1_conv1", "block4_conv3", "block5_conv3", "fc1", "fc2", "predictions"} <= names
    assert vgg.count_params() == 138_357_544
    resnet = models.resnet50(weights=None)
    names = {layer.name for layer in resnet.layers}
    assert {"conv1_conv", "conv2_block2_out", "conv3_block4_out", "conv5_block1_out", "avg_pool", "predictions"} <= names
    assert resnet.count_params() == 25_636_712


def test_application_weights_from_local_file(tmp_path):
    resnet = models.resnet50(weights=None)
    path = tmp_path / f"resnet50{weights_suffix(resnet)}"
    resnet.save_weights(str(path))
    loaded = models.resnet50(weights=path)
    for name in ("conv1_conv", "conv5_block3_3_bn", "predictions"):
        for a, b in zip(resnet.get_layer(name).get_weights(), loaded.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_application_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="'imagenet', None or an existing weights or model file"):
        models.vgg16(weights=tmp_path / "missing.h5")


def test_imagenet_weights_offline_error(tmp_path):
    script = ("from architectures import models\n"
              "try:\n    models.resnet50('imagenet')\n"
              "except RuntimeError as e:\n    print('ERROR:', e)\n")
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), HTTPS_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "ERROR: ResNet-50: could not download the ImageNet weights" in result.stdout, result.stderr
    assert "weights=..." in result.stdout
