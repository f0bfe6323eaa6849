"""Same numbers on both stacks: every native method on today's stack (or whichever runs the tests)
equals the arrays the reproduction stack wrote (``stack_references.py``), float32 and float64."""
import numpy as np
import pytest

from native_test_models import TINY_MODELS
from stack_references import DTYPES, FILE, MODELS, allowed_difference, attribution, native_methods

REFERENCES = dict(np.load(FILE))
METHODS = native_methods()
REWRITE = "rewrite the references on the reproduction stack: .venv/bin/python tests/native/stack_references.py"


def test_the_file_covers_every_native_method():
    for model_name in MODELS:
        for dtype in DTYPES:
            stored = {key.rsplit("/", 1)[1] for key in REFERENCES if key.startswith(f"{model_name}/{dtype}/")}
            assert stored == set(METHODS), REWRITE
    assert str(REFERENCES["versions"]).startswith("tensorflow 2.14."), REWRITE


@pytest.mark.parametrize("model_name", MODELS)
def test_the_models_are_the_same(model_name):
    weights = TINY_MODELS[model_name]().get_weights()
    assert f"{model_name}/weights/{len(weights)}" not in REFERENCES
    for i, got in enumerate(weights):
        np.testing.assert_array_equal(got, REFERENCES[f"{model_name}/weights/{i}"])


@pytest.fixture(scope="module")
def models():
    return {name: TINY_MODELS[name]() for name in MODELS}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_same_attribution_as_the_reproduction_stack(models, model_name, method, dtype):
    expected = REFERENCES[f"{model_name}/{dtype}/{method}"]
    got = attribution(method, models[model_name], REFERENCES[f"{model_name}/x"], dtype)
    assert got.dtype == expected.dtype
    difference = np.abs(got - expected).max() / np.abs(expected).max()
    bound = allowed_difference(REFERENCES, model_name, dtype, method)
    assert difference <= bound, f"{method} on {model_name} ({dtype}): {difference:.2e} of the map's scale > {bound:.1e}"
