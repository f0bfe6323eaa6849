"""The sanity CLI end to end on a small random-weight net: files, report, kill-and-resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from architectures.models import cifar_net
from keras_xai import graph

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = cifar_net(input_shape=(28, 28, 1))
    rng = np.random.default_rng(0)
    model.set_weights([(0.1 * rng.standard_normal(w.shape)).astype("float32") for w in model.get_weights()])
    path = tmp_path_factory.mktemp("weights") / f"cifar_net_mnist{graph.weights_suffix(model)}"
    model.save_weights(str(path))
    return path


def sanity(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "sanity", *args], capture_output=True, text=True, env=ENV,
                          timeout=900, **kwargs)


def common(weights, out, n_images=3, methods="Gradient,LRP-a1b0,LRP-z"):
    return ["--weights", str(weights), "--dataset", "mnist", "--n-images", str(n_images),
            "--methods", methods, "--out", str(out), "--quiet"]


def test_help_explains():
    result = sanity("--help")
    assert result.returncode == 0
    for word in ("random-logit", "cascading", "csc", "simulate", "pattern-svd", "--n-images", "--engine", "resume",
                 "--patterns"):
        assert word in result.stdout


def test_all_writes_numbers_figures_and_report(weights, tmp_path):
    # PatternNet: every command, two-classes too, must reach the training images the patterns need.
    methods = "Gradient,LRP-a1b0,LRP-z,PatternNet"
    result = sanity("all", *common(weights, tmp_path, methods=methods), "--repetitions", "1", "--n-fit", "300")
    assert result.returncode == 0, result.stderr
    for name in ("random_logit", "cascading", "csc", "two_classes", "simulation", "pattern_svd"):
        assert (tmp_path / f"{name}.json").exists(), name
    for name in ("random_logit.png", "cascading.png", "cascading_maps.png", "csc_fc6.png", "simulation_a.png",
                 "simulation_b.png", "two_classes.png", "random_logit.csv", "cascading.csv", "csc_medians.csv",
                 "pattern_svd.png", "pattern_svd.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    random_logit = json.loads((tmp_path / "random_logit.json").read_text())
    assert random_logit["methods"] == methods.split(",")  # the order asked for
    assert set(json.loads((tmp_path / "two_classes.json").read_text())["l1_min_max"]) == set(methods.split(","))
    rows = (tmp_path / "random_logit.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3
    column = rows[0].split(",").index("Gradient")
    values = [float(row.split(",")[column]) for row in rows[1:]]
    assert random_logit["median"][random_logit["methods"].index("Gradient")] == pytest.approx(np.median(values))
    report = (tmp_path / "report.md").read_text()
    assert "| experiment | paper's claim |" in report and "simulation" in report and "CSC" in report
    svd = json.loads((tmp_path / "pattern_svd.json").read_text())
    assert svd["layers"] == ["conv1", "conv2", "conv3", "conv4", "fc5", "fc6"] and svd["n_fit_images"] == 300
    assert "pattern-svd" in report


def test_killed_run_resumes_to_identical_files(weights, tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    args = ["cascading", "--chunk-size", "1"]
    assert sanity(*args, *common(weights, reference, n_images=6)).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "sanity", *args, *common(weights, resumed, n_images=6)],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    per_image = resumed / "per_image" / "cascading"
    deadline = time.time() + 600
    while len(list(per_image.glob("*.npz"))) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(per_image.glob("*.npz")))
    assert 2 <= finished < 6, "the run should have been interrupted part-way"
    assert not (resumed / "cascading.json").exists()
    result = sanity(*args, *common(weights, resumed, n_images=6))
    assert result.returncode == 0, result.stderr
    for name in ("cascading.json", "cascading.csv"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
