"""``python -m lstm_svd`` end to end on a tiny trained classifier (weights file, private cache)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lstm_svd import cli

TINY = ["--n-train", "1000", "--n-test", "500", "--quiet"]


def lstm_svd(*args, home, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_XAI_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "lstm_svd", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as exit_code:
        cli.main(["--help"])
    assert exit_code.value.code == 0
    text = capsys.readouterr().out
    for word in ("train", "output-layer", "lowrank", "embed", "autoencoder", "vae", "gates", "--quick", "--keep",
                 "--seed", "--epochs", "--out", "cached", "report.md", "97.23%", "92.90%"):
        assert word in text, word


# Bad values of single options: tests/test_bad_inputs.py.
def test_weights_that_do_not_fit_give_one_clear_error(tmp_path, private_cache, capsys):
    from architectures import models
    from keras_xai.graph import weights_suffix

    other = models.lstm_classifier(hidden_size=12)
    path = tmp_path / f"hidden12{weights_suffix(other)}"
    other.save_weights(str(path))
    assert cli.main(["output-layer", "--weights", str(path), "--out", str(tmp_path / "out"), *TINY]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(path) in error, error
    assert "could not be loaded into model 'lstm_classifier'" in error and "Traceback" not in error


def test_a_second_run_into_the_same_folder_fails_at_once(tmp_path, capsys):
    from architectures.run_lock import RunLock

    out = tmp_path / "out"
    with RunLock(out, log=lambda message: None):  # the first run, still going
        assert cli.main(["lowrank", "--out", str(out), *TINY]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and f"{out} is in use by another run (pid {os.getpid()} " in error, error
    assert not (out / "report.md").exists()


@pytest.mark.parametrize("content, problem", [("{\"lowrank\": 1.5", "invalid JSON"),
                                              ("[1, 2]", "a JSON list, not an object"),
                                              (b"\xff\xfe", "invalid JSON")])
def test_a_damaged_json_file_is_named_and_read_as_absent(tmp_path, capsys, content, problem):
    from lstm_svd import files

    path = tmp_path / "timings.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert files.read_json(path) is None
    warning = capsys.readouterr().err
    assert warning.startswith(f"warning: {path} is damaged ({problem}") and warning.count("\n") == 1, warning
    assert files.read_json(tmp_path / "absent.json") is None and not capsys.readouterr().err


def test_train_output_layer_and_lowrank_write_numbers_figures_and_report(tmp_path, tiny, monkeypatch, capsys):
    out, home = tmp_path / "out", tmp_path / "home"
    monkeypatch.setenv("KERAS_XAI_HOME", str(home))
    out.mkdir()  # damaged records of earlier runs: named, then rewritten
    (out / "timings.json").write_text('{"train": 1')
    (out / "settings.json").write_text('["not", "an", "object"]')
    assert cli.main(["train", "output-layer", "lowrank", "--weights", str(tiny.weights_path), "--keep", "1,2,3,4,6",
                     "--keep", "2,5", "--trajectory", "none", "--out", str(out), *TINY]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert [line.split(" is damaged")[0] for line in warnings] == [f"warning: {out / name}"
                                                                   for name in ("timings.json", "settings.json")]
    assert sorted(json.loads((out / "timings.json").read_text())) == ["lowrank", "output-layer", "train"]
    assert sorted(json.loads((out / "settings.json").read_text())) == ["lowrank", "output-layer", "train"]
    for name in ("confusion_test.png", "confusion_train.png", "misclassified.png", "output_rows.png", "gramian.png",
                 "angles.png", "singular_values.png", "pca_outputs.png", "lowrank_first-k.png", "lowrank_last-k.png",
                 "lowrank_all-except-one.png", "lowrank_just-one.png", "lowrank_custom.png", "lowrank_recall.png",
                 "rank_one_envelopes.png", "confusion.csv", "gramian.csv", "angles.csv", "singular_values.csv",
                 "pca_train.csv", "lowrank.csv", "lowrank_confusions.csv", "table_4_1.csv", "report.md"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((home / "lstm_svd" / "states").glob("hidden_states-*.npz"))) == 1  # computed once, reused
    lowrank = json.loads((out / "lowrank.json").read_text())
    names = [v["name"] for v in lowrank["variants"]]
    assert len(names) == 41 and names[-2:] == ["keep-1,2,3,4,6", "keep-2,5"]
    by_name = {v["name"]: v for v in lowrank["variants"]}
    assert by_name["first-10"]["changed_predictions"] == 0
    classifier = json.loads((out / "classifier.json").read_text())
    assert by_name["first-10"]["accuracy"] == pytest.approx(classifier["test_accuracy"])
    assert np.sum(classifier["confusion_test"]) == 500 and np.sum(classifier["confusion_train"]) == 1000
    rows = {row["variant"]: row for row in read_csv(out / "lowrank.csv")}
    assert float(rows["first-3"]["accuracy"]) == pytest.approx(by_name["first-3"]["accuracy"], rel=1e-5)
    confusion = np.zeros((10, 10), int)
    for row in read_csv(out / "lowrank_confusions.csv"):
        if row["variant"] == "just-2":
            confusion[int(row["true"]), int(row["predicted"])] = int(row["count"])
    np.testing.assert_array_equal(confusion, by_name["just-2"]["confusion"])
    table = read_csv(out / "table_4_1.csv")
    assert [int(r["direction"]) for r in table] == list(range(1, 11))
    assert all(float(r["envelope_agreement"]) == 1.0 for r in table)
    gramian = np.array([[float(v) for v in list(r.values())[1:]] for r in read_csv(out / "gramian.csv")])
    np.testing.assert_allclose(np.diag(gramian), 1.0, atol=1e-5)
    report = (out / "report.md").read_text()
    assert "| section | thesis finding |" in report and "Table 4.1" in report and "k = 10 reproduces" in report
    assert "random subset of 1000 training and 500 test images" in report


@pytest.mark.slow
def test_all_quick_on_a_tiny_configuration(tmp_path, tiny):
    out = tmp_path / "out"
    result = lstm_svd("all", "--quick", "--weights", str(tiny.weights_path), "--tsne-samples", "100", "--ae-train",
                      "100", "--vae-train", "200", "--gate-test", "200", "--decoder-epochs", "1", "--sample-epochs",
                      "1", "--trajectory", "thesis", "--out", str(out), *TINY, home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    for name in ("trajectory.json", "confusion_per_epoch.png", "embed.json", "tsne_hidden.png", "autoencoder.json",
                 "autoencoder_reconstructions.png", "vae.json",
                 "vae_samples.png", "vae_samples.csv", "tsne_vae.png", "vae_reconstructions.png", "gates.json",
                 "gates.csv", "gates_accuracy.png", "gates_recall.png", "gates/decoded_lstm1_input_c.png"):
        assert (out / name).stat().st_size > 0, name
    gates = json.loads((out / "gates.json").read_text())
    assert len(gates["matrices"]) == 16
    full_rank = [v for m in gates["matrices"] for v in m["variants"] if v["name"] == "first-10"]
    assert len(full_rank) == 16 and all(v["changed_predictions"] == 0 for v in full_rank)
    assert len(read_csv(out / "vae_samples.csv")) == 400
    report = (out / "report.md").read_text()
    assert "QUICK MODE" in report and "Gate matrices" in report and "92.90%" in report
