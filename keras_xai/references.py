"""iNNvestigate's published layer references, and how to compare our analyzers with them.

iNNvestigate publishes ``tests/references/layer/<Analyzer>.hdf5`` (release 2.1.2): inputs of shape
(8, 10, 10, 3) and, per one-layer model ``Input -> LAYER -> Flatten``, its weights, output and the
attribution of the analyzer. This module rebuilds those models and runs the matching native
analyzer (used by the tests and by ``scripts/compare_innvestigate_references.py``).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from tensorflow import keras

from keras_xai.analyzer import create_analyzer

#: iNNvestigate class name in the file name -> (our method name, parameters).
REFERENCE_METHODS = {
    "Gradient": ("gradient", {}),
    "InputTimesGradient": ("input_t_gradient", {}),
    "Deconvnet": ("deconvnet", {}),
    "GuidedBackprop": ("guided_backprop", {}),
    "IntegratedGradients": ("integrated_gradients", {}),
    "SmoothGrad": ("smoothgrad", {"seed": 0}),
    "LRPZ": ("lrp.z", {}),
    "LRPZIgnoreBias": ("lrp.z_IB", {}),
    "LRPZ_Flat_input_layer_rule": ("lrp.z", {"input_layer_rule": "Flat"}),
    "LRPZ_boxed_input_layer_rule": ("lrp.z", {"input_layer_rule": (-10, 10)}),
    "LRPZPlus": ("lrp.z_plus", {}),
    "LRPZPlusFast": ("lrp.z_plus_fast", {}),
    "LRPAlpha1Beta0": ("lrp.alpha_1_beta_0", {}),
    "LRPAlpha1Beta0IgnoreBias": ("lrp.alpha_1_beta_0_IB", {}),
    "LRPAlpha2Beta1": ("lrp.alpha_2_beta_1", {}),
    "LRPAlpha2Beta1IgnoreBias": ("lrp.alpha_2_beta_1_IB", {}),
    "LRPEpsilon": ("lrp.epsilon", {}),
    "LRPEpsilonIgnoreBias": ("lrp.epsilon_IB", {}),
    "LRPFlat": ("lrp.flat", {}),
    "LRPWSquare": ("lrp.w_square", {}),
    "LRPSequentialPresetA": ("lrp.sequential_preset_a", {}),
    "LRPSequentialPresetB": ("lrp.sequential_preset_b", {}),
    "LRPSequentialPresetAFlat": ("lrp.sequential_preset_a_flat", {}),
    "LRPSequentialPresetBFlat": ("lrp.sequential_preset_b_flat", {}),
    "DeepTaylor": ("deep_taylor", {}),
    "BoundedDeepTaylor": ("deep_taylor.bounded", {"low": -128, "high": 128}),
}

#: Upstream tolerance for np.allclose; SmoothGrad's noise needs a looser one.
TOLERANCE = {"rtol": 1e-2, "atol": 1e-8}
SMOOTHGRAD_TOLERANCE = {"rtol": 0.25, "atol": 0.2}


def one_layer_model(group_name: str) -> keras.Model:
    """``Input((10, 10, 3)) -> LAYER -> Flatten()`` for a group name of the reference files."""
    layer = {
        "Dense": lambda: keras.layers.Dense(5),
        "Dense_relu": lambda: keras.layers.Dense(5, activation="relu"),
        "Conv2D": lambda: keras.layers.Conv2D(5, (3, 3)),
        "Conv2D_relu": lambda: keras.layers.Conv2D(5, (3, 3), activation="relu"),
        "AveragePooling2D": lambda: keras.layers.AveragePooling2D((2, 2)),
        "MaxPooling2D": lambda: keras.layers.MaxPooling2D((2, 2)),
    }[group_name]()
    inputs = keras.Input((10, 10, 3))
    return keras.Model(inputs, keras.layers.Flatten()(layer(inputs)), name=group_name)


def reference_cases(path: Path):
    """Yield ``(group name, model, input, published output, published attribution)`` of one file."""
    with h5py.File(path, "r") as file:
        x = file["input"][:]
        for group_name, group in file.items():
            if not isinstance(group, h5py.Group):
                continue
            model = one_layer_model(group_name)
            weights = group["weights"]
            model.set_weights([weights[str(i)][:] for i in range(len(weights))])
            yield group_name, model, x, group["output"][:], group["attribution"][:]


def tolerance_for(reference_name: str) -> dict:
    """Upstream ``np.allclose`` tolerance for a reference file."""
    return SMOOTHGRAD_TOLERANCE if reference_name == "SmoothGrad" else TOLERANCE


def reference_name(path: Path) -> str:
    """The iNNvestigate analyzer name of a reference file (its ``analyzer_name`` attribute)."""
    with h5py.File(path, "r") as file:
        return str(file.attrs.get("analyzer_name", Path(path).stem))


def check_reference_file(path: Path, dtype: str = "float32") -> list:
    """Run the matching native analyzer on every model of one reference file.

    Returns
    -------
    list of dict
        Per model: ``file``, ``model``, ``output_max_abs`` (model output vs the published one) and
        the entries of :func:`compare` for the attribution.
    """
    name = reference_name(path)
    method, params = REFERENCE_METHODS[name]
    tolerance = tolerance_for(name)
    rows = []
    for group_name, model, x, output, attribution in reference_cases(path):
        analyzer = create_analyzer(method, model, dtype=dtype, **params)
        ours = analyzer.analyze(x.astype(np.float32))
        output_error = float(np.abs(model(x.astype(np.float32)).numpy() - output).max())
        rows.append({"file": name, "model": group_name, "output_max_abs": output_error,
                     **compare(ours, attribution, tolerance)})
    return rows


def compare(ours: np.ndarray, published: np.ndarray, tolerance: dict) -> dict:
    """Max absolute / relative error and whether np.allclose holds with ``tolerance``."""
    error = np.abs(ours.astype(np.float64) - published.astype(np.float64))
    scale = np.abs(published).max()
    return {
        "max_abs": float(error.max()),
        "max_rel": float(error.max() / scale) if scale > 0 else float(error.max()),
        "within": bool(np.allclose(ours, published, **tolerance)),
    }
