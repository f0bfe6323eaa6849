"""The paper's sanity checks on the thesis' LSTM classifier: re-initialisation of LSTM layers, maps of
channel-less inputs, CSC per time step against NumPy, the report's verdicts and the CLI end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_xai
from architectures.models import lstm_classifier
from keras_xai import graph
from sanity import csc_experiment, methods, randomization, report
from sanity.experiment_inputs import AnalyzerPool, ExperimentInputs, saliency_maps

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _model(seed=0):
    model = lstm_classifier()
    rng = np.random.default_rng(seed)
    model.set_weights([(0.3 * rng.standard_normal(w.shape)).astype("float32") for w in model.get_weights()])
    return model


def _inputs(n=3, seed=1):
    images = np.random.default_rng(seed).uniform(size=(n, 28, 28)).astype("float32")
    images[:, :3] = 0.0  # blank first rows, as MNIST digits have
    return ExperimentInputs(images, np.arange(n) % 10, np.arange(n) + 100, (0.0, 1.0))


@pytest.mark.parametrize("pytorch_style", [False, True])
def test_fresh_lstm_weights_are_what_keras_draws_for_a_new_layer(pytorch_style):
    model = lstm_classifier(pytorch_style=pytorch_style)
    layer = model.get_layer("lstm1")
    kernel, recurrent, bias = randomization.fresh_weights(layer, np.random.default_rng(0))
    assert kernel.shape == (28, 40) and recurrent.shape == (10, 40) and bias.shape == (40,)
    if pytorch_style:  # U(+-1/sqrt(10)) everywhere, biases the sum of two such draws, no forget-gate one
        assert np.abs(kernel).max() <= 10 ** -0.5 and np.abs(bias).max() <= 2 * 10 ** -0.5
        assert not np.any(bias == 1.0)
    else:  # Glorot-uniform input kernel, orthogonal recurrent kernel, forget-gate bias one (Keras' default)
        assert np.abs(kernel).max() <= np.sqrt(6 / (28 + 40))
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(10), atol=1e-5)
        np.testing.assert_array_equal(bias, np.concatenate([np.zeros(10), np.ones(10), np.zeros(20)]))
        np.testing.assert_array_equal(bias, layer.get_weights()[2])  # what the new model itself holds
    again = randomization.fresh_weights(layer, np.random.default_rng(0))
    other = randomization.fresh_weights(layer, np.random.default_rng(1))
    np.testing.assert_array_equal(kernel, again[0])  # seeded
    assert not np.array_equal(kernel, other[0])


def test_maps_of_inputs_without_a_channel_axis_are_one_channel():
    model, inputs = _model(), _inputs()
    gradient, lrp = methods.by_label(["Gradient", "LRP-z"])
    pool = AnalyzerPool(model, inputs)
    classes = np.array([1, 2, 3])
    raw = pool.get(gradient).analyze(inputs.images, neuron_selection=classes)
    np.testing.assert_array_equal(saliency_maps(pool.get(gradient), inputs.images, classes, gradient), np.abs(raw))
    relevance = pool.get(lrp).analyze(inputs.images, neuron_selection=classes)
    np.testing.assert_array_equal(saliency_maps(pool.get(lrp), inputs.images, classes, lrp), relevance)
    assert relevance.shape == (3, 28, 28)


def test_csc_per_time_step_equals_the_cosines_of_the_propagated_vectors_in_numpy():
    model, inputs = _model(), _inputs()
    specs = methods.by_label(["Gradient", "LRP-epsilon"])
    n_vectors, seed = 4, 3
    result = csc_experiment.cosine_similarity_convergence(model, inputs, specs, ["logits", "lstm2"], n_vectors=n_vectors,
                                                          seed=seed, chunk_size=2, progress=False,
                                                          per_location_layers=["lstm1", "rows"])
    shapes = {"logits": (10,), "lstm2": (10,)}
    vectors = csc_experiment.injected_vectors(inputs, np.arange(3), ["logits", "lstm2"], shapes, n_vectors, seed)
    x = np.repeat(inputs.images, n_vectors, axis=0)
    for spec in specs:
        analyzer = keras_xai.create_analyzer(spec.analyzer, model, **spec.parameters((0.0, 1.0)))
        for injection in ("logits", "lstm2"):
            propagated = analyzer.propagate_from(x, injection, vectors[injection])
            for layer in ("lstm1", "rows"):
                paths = np.asarray(propagated[layer], np.float64).reshape(3, n_vectors, 28, -1)
                cosines = []  # (images, pairs, time steps)
                for i in range(n_vectors):
                    for j in range(i + 1, n_vectors):
                        a, b = paths[:, i], paths[:, j]
                        with np.errstate(invalid="ignore"):
                            cosines.append(np.abs((a * b).sum(-1)) / (np.linalg.norm(a, axis=-1)
                                                                      * np.linalg.norm(b, axis=-1)))
                per_step = np.moveaxis(np.stack(cosines, axis=1), -1, 0).reshape(28, -1)
                expected = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in per_step])
                measured = result.location_medians(spec.label, injection, layer)
                np.testing.assert_allclose(measured, expected, rtol=1e-5, err_msg=f"{spec.label} {injection} {layer}")
                if layer == "rows":  # blank rows carry no input-times relevance: no cosine is defined there
                    assert np.isnan(measured[:3]).all() == (spec.label == "LRP-epsilon")
    with pytest.raises(ValueError, match=r"per_location_layers \['lstm9'\]"):
        csc_experiment.cosine_similarity_convergence(model, inputs, specs, ["logits"], progress=False,
                                                     per_location_layers=["lstm9"])


def _write(folder, name, payload):
    (folder / f"{name}.json").write_text(json.dumps(payload))


@pytest.mark.parametrize("lrp_ssim, answer", [(0.95, "yes"), (0.5, "partly")])
def test_lstm_report_applies_the_papers_thresholds_per_method(tmp_path, lrp_ssim, answer):
    methods_run = ["Gradient", "LRP-z"]
    _write(tmp_path, "random_logit", {"methods": methods_run, "median": [0.3, lrp_ssim], "n_images": 5})
    # Read where the top LSTM is randomized too (lstm2), as the paper reads it at its first conv step.
    _write(tmp_path, "cascading", {"methods": methods_run, "steps": ["logits", "lstm2", "lstm1"],
                                   "first_conv_step": "lstm2", "median": [[0.8, 0.2, 0.1], [0.75, 0.72, 0.5]],
                                   "n_images": 5})
    medians = {"Gradient": {"logits": {"lstm2": 0.4, "lstm1": 0.7, "rows": 0.8}},
               "LRP-z": {"logits": {"lstm2": 0.6, "lstm1": 0.995, "rows": 0.9}}}
    _write(tmp_path, "csc", {"methods": methods_run, "injection_layers": ["logits"], "first_conv_layer": "lstm1",
                             "layers": ["rows", "lstm1", "lstm2", "logits"], "medians": medians,
                             "median_per_time_step": {"Gradient": {"logits": {"lstm1": [0.5, 0.9]}},
                                                      "LRP-z": {"logits": {"lstm1": [0.999, None]}}}})
    text = report.write_lstm_report(tmp_path, "LSTM").read_text()
    # LRP-z: cascading 0.75 >= 0.7 and CSC 0.995 >= 0.99 ignore later layers; random logit as parametrized.
    assert f"Measured: {answer}." in text
    assert f"LRP-z: {3 if lrp_ssim >= 0.9 else 2} of 3 checks" in text and "Gradient: 0 of 3 checks" in text
    assert "0.75 / 0.72 / 0.5 (**ignores**)" in text and "0.8 / 0.2 / 0.1 (sensitive)" in text  # cascading
    assert "| LRP-z | " in text and "0.4 / 0.005 / 0.1 (**ignores**)" in text and "0.6 / 0.3 / 0.2 (sensitive)" in text
    assert "Gradient 0.1 at step 2 (last step 0.1)" in text and "LRP-z 0.001 at step 1 (last step n/a)" in text


def test_lstm_report_counts_only_the_checks_a_method_was_in_and_needs_an_lrp_method(tmp_path):
    _write(tmp_path, "random_logit", {"methods": ["Gradient", "LRP-z"], "median": [0.3, float("nan")], "n_images": 5})
    _write(tmp_path, "cascading", {"methods": ["Gradient"], "steps": ["logits", "lstm2"], "first_conv_step": "lstm2",
                                   "median": [[0.9, 0.8]], "n_images": 5})
    text = report.write_lstm_report(tmp_path, "LSTM").read_text()
    assert "Measured: not measured (no LRP method ran)." in text  # LRP-z's only check is undefined
    assert "Gradient: 1 of 2 checks (cascading)" in text and "LRP-z: 0 of 0 checks" in text
    assert "| LRP-z | nan (undefined) | n/a |" in text


def sanity(*args):
    return subprocess.run([sys.executable, "-m", "sanity", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


def test_cli_runs_the_checks_on_the_lstm_and_reports_per_method(tmp_path):
    model = _model()
    weights = tmp_path / f"lstm{graph.weights_suffix(model)}"
    model.save_weights(str(weights))
    out = tmp_path / "out"
    result = sanity("all", "--model", "lstm_classifier", "--weights", str(weights), "--n-images", "2",
                    "--methods", "Gradient,LRP-epsilon,GuidedBP", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "skipping GuidedBP" in result.stdout
    for name in ("random_logit.png", "random_logit_examples.png", "cascading.png", "cascading_maps.png",
                 "csc_logits.png", "csc_time_steps_logits.png", "csc_time_steps_lstm2.png", "two_classes.png",
                 "random_logit.csv", "cascading.csv", "csc_medians.csv", "csc_time_steps.csv"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "simulation.json").exists() and not (out / "pattern_svd.json").exists()
    rows = (out / "csc_time_steps.csv").read_text().strip().splitlines()[1:]
    at_lstm1 = [row for row in rows if row.startswith("LRP-epsilon,logits,lstm1,")]
    assert [int(row.split(",")[3]) for row in at_lstm1] == list(range(1, 29))
    cascading = json.loads((out / "cascading.json").read_text())
    assert cascading["steps"] == ["logits", "lstm2", "lstm1"] and cascading["methods"] == ["Gradient", "LRP-epsilon"]
    text = (out / "report.md").read_text()
    assert "Does LRP for LSTMs ignore later layers? Measured:" in text
    assert "| Gradient | " in text and "| LRP-epsilon | " in text
    assert "Not run: GuidedBP is not defined on this model" in text and "sigmoids and tanh" in text


def test_cli_refuses_pattern_svd_and_other_engines_on_the_lstm(tmp_path):
    result = sanity("pattern-svd", "--model", "lstm_classifier", "--out", str(tmp_path))
    assert result.returncode == 2 and "lstm_classifier has none" in result.stderr
    result = sanity("csc", "--model", "lstm_classifier", "--engine", "deeplift", "--out", str(tmp_path))
    assert result.returncode == 2 and "native engine only (deeplift has no LSTM layers)" in result.stderr
