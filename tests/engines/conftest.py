"""Fixtures for the engine tests: the native tests' small models plus residual nets for DeepLIFT."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "native"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import native_test_models  # noqa: E402
import engine_test_models  # noqa: E402


@pytest.fixture(scope="session")
def cifar_logits():
    """Appendix-D CIFAR net without softmax, random weights and non-zero biases."""
    return native_test_models.cifar_net_logits(seed=1)


@pytest.fixture(scope="session")
def vgg_style():
    return native_test_models.vgg_style_net(seed=2)


@pytest.fixture(scope="session")
def residual():
    """Tiny residual net of the native tests: BatchNorm, Add, Concatenate, Reshape, Dropout."""
    return native_test_models.residual_net(seed=3)


@pytest.fixture(scope="session")
def resnet_style():
    """ResNet-style net: ZeroPadding, strided conv, BatchNorm, two residual blocks (one with a
    projection shortcut), GlobalAveragePooling, dense logits; no max pooling."""
    return engine_test_models.resnet_style_net(seed=4)


@pytest.fixture(scope="session")
def batchnorm():
    return native_test_models.batchnorm_net(seed=5)


def images(seed, shape=(4, 32, 32, 3), low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
