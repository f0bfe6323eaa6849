"""Fixtures for the engine tests: the native tests' models plus a ResNet-style net."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "native"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_test_models  # noqa: E402
import native_test_models  # noqa: E402


def _model_fixture(name: str, build, seed: int, doc: str):
    """A session-scoped fixture ``name`` returning ``build(seed=seed)`` (random weights, non-zero biases)."""
    def fixture():
        return build(seed=seed)
    fixture.__doc__ = doc
    return pytest.fixture(scope="session", name=name)(fixture)


cifar_logits = _model_fixture("cifar_logits", native_test_models.cifar_net_logits, 1,
                              "Appendix-D CIFAR net without softmax.")
vgg_style = _model_fixture("vgg_style", native_test_models.vgg_style_net, 2, "Small VGG-style net (fused ReLUs).")
residual = _model_fixture("residual", native_test_models.residual_net, 3,
                          "Tiny residual net: BatchNorm, Add, Concatenate, Reshape, Dropout.")
resnet_style = _model_fixture("resnet_style", engine_test_models.resnet_style_net, 4,
                              engine_test_models.resnet_style_net.__doc__)
batchnorm = _model_fixture("batchnorm", native_test_models.batchnorm_net, 5, "Conv, BatchNorm, ReLU, Dense.")
