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
from sanity.cli import main as sanity_main

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


def result_files(folder: Path) -> dict:
    """Every file of a run but figures and the lock, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".png" and p.name != ".lock"}


def start(args):
    return subprocess.Popen([sys.executable, "-m", "sanity", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_after(process, folder: Path, n_files: int) -> int:
    """SIGKILL ``process`` once ``folder`` holds ``n_files`` result files (or it ended); files left."""
    deadline = time.time() + 600
    while len(list(folder.glob("*.npz"))) < n_files and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return len(list(folder.glob("*.npz")))


def test_killed_runs_resume_to_identical_files_and_one_run_holds_the_folder(weights, tmp_path, capsys):
    """Killed (SIGKILL) at three random points and resumed each time, the last time with another
    --chunk-size: every result file equals an uninterrupted run's byte for byte. While a run goes, a
    second run into its folder stops at once naming it; the lock a killed run leaves is taken over."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    args, n = ["csc", "--chunk-size", "2", "--seed", "1"], 16
    assert sanity_main([*args, *common(weights, reference, n_images=n)]) == 0  # in this process: no start-up
    per_image = resumed / "per_image" / "csc"
    kill_points = np.sort(np.random.default_rng().choice(np.arange(1, n - 4), 3, replace=False))
    left = 0
    for round, kill_point in enumerate(kill_points):
        process = start([*args, *common(weights, resumed, n_images=n)])
        if round == 0:  # a second run meanwhile (in this process: no start-up time)
            while process.poll() is None and not (resumed / ".lock").exists() or not (resumed / ".lock").read_text():
                time.sleep(0.02)
            code = sanity_main([*args, *common(weights, resumed, n_images=n)])
            error = capsys.readouterr().err
            assert code == 2 and f"in use by another run (pid {process.pid} on" in error, error
            assert len(error.strip().splitlines()) == 1
        left = kill_after(process, per_image, max(int(kill_point), left + 1))
        assert left < n, f"the run should have been interrupted part-way (kill points {kill_points})"
    assert not (resumed / "csc.json").exists()
    capsys.readouterr()
    assert sanity_main(["csc", "--chunk-size", "3", "--seed", "1", *common(weights, resumed, n_images=n)]) == 0
    printed = capsys.readouterr().out
    assert "taking over the lock of a run that did not finish" in printed and "batch size 2 (asked: 3)" in printed
    expected, got = result_files(reference), result_files(resumed)
    assert sorted(expected) == sorted(got)
    assert [name for name in expected if expected[name] != got[name]] == []


def test_other_weights_are_refused_naming_them(weights, tmp_path, capsys):
    assert sanity_main(["random-logit", *common(weights, tmp_path, n_images=2)]) == 0
    summary = json.loads((tmp_path / "random_logit.json").read_text())
    assert summary["weights"]["file"] == str(weights) and len(summary["weights"]["file_sha256"]) == 64
    assert summary["data"]["n_images"] == 2 and summary["data"]["dataset"] == "mnist"
    assert str(weights) in (tmp_path / "report.md").read_text()
    model = cifar_net(input_shape=(28, 28, 1))
    other = weights.with_name("other" + graph.weights_suffix(model))
    model.save_weights(str(other))
    capsys.readouterr()
    assert sanity_main(["random-logit", *common(other, tmp_path, n_images=2)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "model.weights" in error and "--overwrite" in error
    assert sanity_main(["random-logit", *common(other, tmp_path, n_images=2), "--overwrite"]) == 0
    assert json.loads((tmp_path / "random_logit.json").read_text())["weights"]["file"] == str(other)
