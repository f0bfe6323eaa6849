"""Cross-stack reference arrays: every native method on the same weights and inputs, computed on the
reproduction stack (TF 2.14.1, Keras 2.14), compared on today's stack (TF 2.21, Keras 3) by
``test_native_stack_references.py``.

Write them (on the reproduction stack only; the file records the versions that made it):

    .venv/bin/python tests/native/stack_references.py

The models are the shared test matrix's (``native_test_models``) with weights drawn by NumPy from a
seed, so both stacks build the same numbers without reading a Keras file; the stored weights are
compared too, so a difference in the model is told apart from one in the attributions. Each map is
stored in float32 (what users get) and float64: in float64 the stacks must agree to rounding, while a
float32 map may carry its method's own rounding error (``lrp.contrastive`` subtracts two nearly equal
maps: 1.4e-6 of its scale on TF 2.14), so the float32 bound is the larger of 1e-6 and twice the
reference's own float32 error.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from native_test_models import TINY_MODELS, params_for  # noqa: E402

FILE = Path(__file__).with_name("stack_references.npz")
#: The matrix models that together hold every supported layer type (BatchNorm, Add, pooling, ...).
MODELS = ("conv", "pooling", "residual")
#: Allowed difference between stacks, relative to the largest magnitude of the reference map.
RTOL = 1e-6
DTYPES = ("float32", "float64")


def native_methods() -> list:
    import keras_xai
    return [info.name for info in keras_xai.list_analyzers() if "native" in info.engines]


def inputs_for(model, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)


def attribution(method: str, model, x: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """``method``'s input map for ``x`` (fitted methods fit on 64 seeded samples first)."""
    import keras_xai
    analyzer = keras_xai.create_analyzer(method, model, dtype=dtype, **params_for(method))
    if hasattr(analyzer, "fit"):
        analyzer.fit(np.random.default_rng(1).normal(size=(64, *x.shape[1:])).astype(dtype))
    return analyzer.analyze(x.astype(dtype))


def compute() -> dict:
    """Every array the reference file holds, keyed ``model/weights/i``, ``model/x`` and
    ``model/dtype/method``."""
    arrays = {}
    for model_name in MODELS:
        model = TINY_MODELS[model_name]()
        for i, weights in enumerate(model.get_weights()):
            arrays[f"{model_name}/weights/{i}"] = weights
        x = arrays[f"{model_name}/x"] = inputs_for(model)
        for method in native_methods():
            for dtype in DTYPES:
                arrays[f"{model_name}/{dtype}/{method}"] = attribution(method, model, x, dtype)
    return arrays


def allowed_difference(references: dict, model_name: str, dtype: str, method: str) -> float:
    """The bound on ``max |today - reference| / max |reference|`` (see the module docstring)."""
    if dtype == "float64":
        return RTOL
    float32, float64 = (references[f"{model_name}/{d}/{method}"] for d in DTYPES)
    own_error = np.abs(float32 - float64).max() / np.abs(float64).max()
    return max(RTOL, 2 * own_error)


def main() -> None:
    import tensorflow as tf
    if not tf.__version__.startswith("2.14."):
        sys.exit(f"write the references on the reproduction stack (TF 2.14); this is TF {tf.__version__}")
    arrays = compute()
    arrays["versions"] = np.array(f"tensorflow {tf.__version__}, numpy {np.__version__}, "
                                  f"python {sys.version.split()[0]}")
    np.savez_compressed(FILE, **arrays)
    print(f"wrote {len(arrays)} arrays to {FILE}")


if __name__ == "__main__":
    main()
