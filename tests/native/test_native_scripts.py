"""Smoke tests of the two scripts on tiny configurations."""
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
