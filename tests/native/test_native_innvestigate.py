"""Our analyzers against iNNvestigate 2.1.2 itself, run in graph mode in a separate process.

Models: the appendix-D CIFAR net and a small VGG-style net (fused ReLUs), random weights and
non-zero biases, a batch of 4 images with values in [-1, 1]. Criterion:
max |ours - theirs| / max |theirs| <= 1e-4. SmoothGrad is random and is left out.
"""
import importlib.util
import json
import subprocess
import warnings
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_xai

pytestmark = pytest.mark.skipif(importlib.util.find_spec("innvestigate") is None,
                                reason="iNNvestigate runs on the reproduction stack only (TF 2.14, Keras 2)")

WORKER = Path(__file__).with_name("innvestigate_worker.py")
TOLERANCE = 1e-4

#: (our method, parameters) for the full comparison.
ALL_METHODS = [
    ("gradient", {}), ("input_t_gradient", {}), ("deconvnet", {}), ("guided_backprop", {}),
    ("integrated_gradients", {"steps": 16}),
    ("lrp.z", {}), ("lrp.z_IB", {}), ("lrp.epsilon", {"epsilon": 0.01}), ("lrp.epsilon_IB", {}),
    ("lrp.w_square", {}), ("lrp.flat", {}), ("lrp.alpha_beta", {"alpha": 3, "beta": 2}),
    ("lrp.alpha_1_beta_0", {}), ("lrp.alpha_1_beta_0_IB", {}), ("lrp.alpha_2_beta_1", {}),
    ("lrp.alpha_2_beta_1_IB", {}), ("lrp.z_plus", {}), ("lrp.z_plus_fast", {}),
    ("lrp.sequential_preset_a", {}), ("lrp.sequential_preset_b", {}),
    ("lrp.sequential_preset_a_flat", {}), ("lrp.sequential_preset_b_flat", {}),
    ("lrp.z", {"input_layer_rule": [-1, 1]}), ("lrp.cmp", {}),
    ("deep_taylor", {}), ("deep_taylor.bounded", {"low": -1, "high": 1}),
]
#: A representative subset for the default run: one process, a few analyzers per net.
FAST = {
    "cifar": ["gradient", "lrp.alpha_1_beta_0", "deep_taylor.bounded"],
    "vgg": ["guided_backprop", "lrp.epsilon", "lrp.z_plus"],
}


def _key(net, method, params):
    return f"{net}|{method}|{json.dumps(params, sort_keys=True)}"


def run_innvestigate(tmp_path, nets: dict, jobs: list) -> dict:
    """Analyses of iNNvestigate for ``jobs`` = [(net, method, params)], from one subprocess
    (files in pytest's temporary directory, which pytest cleans up)."""
    files = {}
    for net, (model, x) in nets.items():
        files[net] = (str(tmp_path / f"{net}.h5"), str(tmp_path / f"{net}.npy"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "HDF5 is legacy": it is what iNNvestigate loads
            model.save(files[net][0], save_format="h5")
        np.save(files[net][1], x)
    jobs_path, out_path = tmp_path / "jobs.json", tmp_path / "out.npz"
    jobs_path.write_text(json.dumps([[_key(n, m, p), *files[n], m, p] for n, m, p in jobs]))
    completed = subprocess.run([sys.executable, str(WORKER), str(jobs_path), str(out_path)],
                               capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with np.load(out_path) as data:
        return {k: data[k] for k in data.files}


def _images(seed):
    return np.random.default_rng(seed).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)


def _compare(nets, jobs, tmp_path):
    theirs = run_innvestigate(tmp_path, nets, jobs)
    failures = []
    for net, method, params in jobs:
        model, x = nets[net]
        native_params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        ours = keras_xai.create_analyzer(method, model, **native_params).analyze(x)
        reference = theirs[_key(net, method, params)]
        scale = np.abs(reference).max()
        assert scale > 0, f"{net} {method}: iNNvestigate returned all zeros; the comparison would be void"
        error = np.abs(ours - reference).max() / scale
        print(f"{net:6s} {method:30s} {json.dumps(params):28s} max|ours-theirs|/max|theirs| = {error:.1e}")
        if not error <= TOLERANCE:
            failures.append(f"{net} {method} {params}: max|ours-theirs|/max|theirs| = {error:.2e}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def nets(cifar_logits, vgg_style):
    return {"cifar": (cifar_logits, _images(0)), "vgg": (vgg_style, _images(1))}


def test_matches_innvestigate_on_a_representative_subset(nets, tmp_path):
    params = {m: p for m, p in reversed(ALL_METHODS)}  # first entry wins (plain lrp.z)
    jobs = [(net, method, params[method]) for net, methods in FAST.items() for method in methods]
    _compare(nets, jobs, tmp_path)


@pytest.mark.slow
def test_matches_innvestigate_for_every_method(nets, tmp_path):
    jobs = [(net, method, params) for net in nets for method, params in ALL_METHODS]
    _compare(nets, jobs, tmp_path)
