"""Smoke tests of the scripts on tiny configurations."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_innvestigate_references(capsys):
    script = _load("compare_innvestigate_references")
    assert script.main(["--only", "LRPZ", "GuidedBackprop"]) == 0
    out = capsys.readouterr().out
    assert "LRPZ" in out and "GuidedBackprop" in out and "2 files; all within tolerance" in out
    assert script.main(["--refs", "/nonexistent"]) == 2


def test_bench_engine_without_innvestigate(capsys, tmp_path):
    script = _load("bench_engine")
    assert script.main(["--methods", "gradient", "lrp.alpha_1_beta_0", "--batch", "2", "--repeats", "1",
                        "--no-innvestigate", "--json", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "lrp.alpha_1_beta_0" in out and "ours/grad" in out
    assert (tmp_path / "bench.json").exists()
    assert script.main(["--methods", "lrp.nonsense", "--no-innvestigate"]) == 2


@pytest.mark.slow
def test_bench_engine_with_innvestigate():
    pytest.importorskip("innvestigate")  # the reproduction stack only
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_engine.py"), "--methods", "gradient", "lrp.z",
         "--batch", "2", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "speed" in completed.stdout and "lrp.z" in completed.stdout


def test_bench_engine_build_time_is_first_call_minus_a_steady_call():
    script = _load("bench_engine")
    row = {"first": {"native": 1.0, "package": 9.0, "deeplift": 0.5}, "steady": {"native": 0.4, "package": 5.0, "deeplift": 0.6}}
    assert script.build_seconds(row, "native") == pytest.approx(0.6)
    assert script.build_seconds(row, "package") == pytest.approx(4.0)
    assert script.build_seconds(row, "deeplift") is None  # a first call faster than steady: not measured
    assert script.build_seconds(row, "innvestigate") is None


def test_bench_bounds_counts_the_multiply_adds_of_the_net():
    """Hand count of the appendix-D CIFAR net (32x32x3, 'same' 3x3 convolutions, two 2x2 poolings)."""
    script = _load("bench_bounds")
    bench = script.bench_engine
    macs = script.layer_macs(bench.build_model(0))
    assert macs == {"conv1": 32 * 32 * 32 * 27, "conv2": 32 * 32 * 64 * 9 * 32, "conv3": 16 * 16 * 128 * 9 * 64,
                    "conv4": 16 * 16 * 128 * 9 * 128, "fc5": 8192 * 1024, "fc6": 1024 * 10}
    inner = macs["conv2"] + macs["conv3"] + macs["conv4"] + macs["fc5"]
    assert script.inner_macs(macs) == inner
    # 64 images x 64 steps, forward + input gradient; DeepLIFT RevealCancel: 4 products per layer
    assert script.work_flops("integrated_gradients", macs, 64) == 2.0 * 64 * 64 * 2 * inner
    assert script.work_flops("deep_lift.reveal_cancel", macs, 64) == 2.0 * 64 * 4 * inner


def test_bench_bounds_refuses_layers_it_cannot_count():
    script = _load("bench_bounds")
    from tensorflow import keras
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.DepthwiseConv2D(3)(inputs))
    with pytest.raises(ValueError, match="DepthwiseConv2D"):
        script.layer_macs(model)


@pytest.mark.slow
def test_bench_bounds_runs_without_baselines(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_bounds.py"), "--methods", "deep_lift.rescale", "--batch", "2",
         "--no-baselines", "--json", str(tmp_path / "bounds.json")], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "deep_lift.rescale" in completed.stdout and "no baseline measured" in completed.stdout
    assert (tmp_path / "bounds.json").exists()


def test_bench_sanity_counts_the_csc_passes_arithmetic():
    """Per injection every Conv2D / Dense layer at or below it, once per vector; the forward pass once,
    up to the highest injection."""
    script = _load("bench_sanity")
    bounds = _load("bench_bounds")
    model = bounds.bench_engine.build_model(0)
    macs = bounds.layer_macs(model)
    below = {"fc6": sum(macs.values()), "conv3": macs["conv1"] + macs["conv2"] + macs["conv3"]}
    flops = script.csc_pass_flops(model, ["fc6", "conv3"], n_images=4, n_vectors=5, macs=macs)
    assert flops == 2.0 * (4 * below["fc6"] + 4 * 5 * (below["fc6"] + below["conv3"]))
    assert script.csc_pass_flops(model, ["conv3"], 4, 5, macs) == 2.0 * (4 * below["conv3"] + 4 * 5 * below["conv3"])
    with pytest.raises(ValueError, match="nowhere"):
        script.csc_pass_flops(model, ["nowhere"], 4, 5, macs)


@pytest.mark.slow
def test_bench_sanity_breaks_the_csc_protocol_down(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_sanity.py"), "--n-images", "2", "--protocols", "csc",
         "--engines", "native", "--methods", "Gradient", "--breakdown", "--json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Gradient first call" in completed.stdout and "arithmetic of the passes" in completed.stdout
    assert "protocol measured above" in completed.stdout and "target" not in completed.stdout.split("above")[-1]
    import json
    breakdown = json.loads((tmp_path / "bench.json").read_text())["csc_breakdown"]
    assert list(breakdown["cpu_s"]) == ["draw the vectors", "Gradient create", "Gradient trace",
                                        "Gradient first call", "Gradient statistics"]
    assert breakdown["statistics_cpu_s"] == breakdown["cpu_s"]["Gradient statistics"]
    # The MNIST appendix-D net by hand: 28x28x1 input, 'same' 3x3 convolutions, two 2x2 poolings.
    conv1, conv2 = 28 * 28 * 32 * 9, 28 * 28 * 64 * 9 * 32
    conv3, conv4 = 14 * 14 * 128 * 9 * 64, 14 * 14 * 128 * 9 * 128
    fc5, fc6 = 6272 * 1024, 1024 * 10
    below = [conv1 + conv2 + conv3 + conv4 + fc5 + fc6, conv1 + conv2 + conv3 + conv4 + fc5,
             conv1 + conv2 + conv3 + conv4, conv1 + conv2 + conv3, conv1 + conv2]  # fc6, fc5, conv4, conv3, conv2
    assert breakdown["gflop_per_method"] == pytest.approx(2 * (2 * below[0] + 2 * 5 * sum(below)) / 1e9)
    assert breakdown["arithmetic_s"] == pytest.approx(
        breakdown["gflop_per_method"] / breakdown["peak_gflops_per_s"])


@pytest.mark.slow
def test_bench_stacks_compares_two_interpreters(tmp_path):
    # This interpreter stands for both stacks: the ratios are then those of identical work.
    out = tmp_path / "stacks.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_stacks.py"), "--reproduction", sys.executable, "--today", sys.executable,
         "--methods", "gradient", "lrp.z", "--rounds", "1", "--batch", "2", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "gradient" in completed.stdout and "lrp.z" in completed.stdout
    import json
    rows = {row["method"]: row for row in json.loads(out.read_text())["methods"]}
    assert set(rows) == {"gradient", "lrp.z"}
    assert all(row["reproduction_steady"] > 0 and row["today_steady"] > 0 and row["ratio_steady"] > 0
               for row in rows.values())


def test_bench_stacks_refuses_a_missing_interpreter(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load("bench_stacks").parse_args(["--reproduction", sys.executable, "--today", "/nonexistent/python"])
    assert exit_info.value.code == 2 and "no interpreter at /nonexistent/python" in capsys.readouterr().err
