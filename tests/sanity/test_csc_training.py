"""CSC against training (python -m sanity csc-training) and the report's explanations drawn from it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sanity import report
from sanity.setups import build_setup

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def sanity(*args):
    return subprocess.run([sys.executable, "-m", "sanity", *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


def test_the_untrained_net_is_seeded_and_named():
    first, second = (build_setup("cifar_net", "mnist", 2, 0, epochs=0) for _ in range(2))
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert "untrained" in first.description and first.provenance["weights"]["source"].startswith("random")
    with pytest.raises(ValueError, match="training length of the project's cifar_net"):
        build_setup("vgg16", "samples", 2, 0, epochs=0)


def test_sweep_equals_the_csc_command_at_the_same_training_length(tmp_path):
    common = ["--n-images", "2", "--methods", "LRP-a1b0,Gradient", "--quiet", "--epochs", "0"]
    swept = sanity("csc-training", *common, "--out", str(tmp_path / "sweep"))
    assert swept.returncode == 0, swept.stderr
    alone = sanity("csc", *common, "--out", str(tmp_path / "csc"))
    assert alone.returncode == 0, alone.stderr
    training = json.loads((tmp_path / "sweep" / "csc_training.json").read_text())
    csc = json.loads((tmp_path / "csc" / "csc.json").read_text())
    assert training["epochs"] == [0] and training["layer"] == "conv1" and training["injection_layer"] == "fc6"
    for method in ("LRP-a1b0", "Gradient"):
        assert training["medians"][method] == [csc["medians"][method]["fc6"]["conv1"]]
    assert 0.05 < training["test_accuracy"][0] < 0.3  # untrained: about chance
    rows = (tmp_path / "sweep" / "csc_training.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epochs,method,median_abs_cos,one_minus_median") and len(rows) == 3
    assert (tmp_path / "sweep" / "csc_training.png").stat().st_size > 0


def test_cli_checks_the_training_lengths(tmp_path):
    result = sanity("csc-training", "--model", "vgg16", "--out", str(tmp_path))
    assert result.returncode == 2 and "trains the appendix-D net" in result.stderr
    result = sanity("csc", "--epochs", "0,1", "--out", str(tmp_path))
    assert result.returncode == 2 and "runs on one training length" in result.stderr
    result = sanity("csc-training", "--epochs", "-1", "--out", str(tmp_path))
    assert result.returncode == 2 and "0..1000" in result.stderr


def _write(folder, name, payload):
    (folder / f"{name}.json").write_text(json.dumps(payload))


def test_claims_not_reproduced_are_explained_by_the_sweep_and_reproduced_ones_are_not(tmp_path):
    medians = {"LRP-a1b0": 1 - 1e-4, "DTD": 0.95, "PatternNet": 0.999, "Gradient": 0.5}
    _write(tmp_path, "csc", {"first_conv_layer": "conv1", "injection_layers": ["fc6"],
                             "methods": list(medians), "medians": {m: {"fc6": {"conv1": v}} for m, v in medians.items()},
                             "baselines": {"conv1": 0.1}, "converging_methods": ["LRP-a1b0", "DTD", "PatternNet"]})
    _write(tmp_path, "csc_training", {"epochs": [0, 1, 3], "layer": "conv1", "n_images": 4,
                                      "methods": ["LRP-a1b0", "DTD", "PatternNet"],
                                      "medians": {"LRP-a1b0": [1 - 1e-7, 1 - 1e-4, 1 - 5e-5],
                                                  "DTD": [0.995, 0.95, 0.97], "PatternNet": [0.98, 0.999, 0.999]}})
    claims = {c.claim: c for c in report.collect_claims(tmp_path)}
    a1b0 = claims["LRP alpha1beta0 converges on the small net (injection fc6, layer conv1)"]
    assert a1b0.reproduced is False
    assert a1b0.explanation.startswith("Training moves it") and "LRP-a1b0: 1e-07 (0 ep.), 0.0001 (1 ep.), 5e-05 (3 ep.)" \
        in a1b0.explanation
    others = claims["the other modified-BP methods converge"]
    assert others.reproduced is False and others.explanation.startswith("Untrained, 1 of 2 reach 0.99")
    assert claims["Gradient does not converge"].reproduced is True and claims["Gradient does not converge"].explanation == ""
    text = report.write_report(tmp_path, "claims").read_text()
    assert "| explanation (measured control) |" in text and "Training moves it" in text
