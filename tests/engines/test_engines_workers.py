"""The worker processes: reuse, crashes, hangs, errors naming the layer, several engines in one
session next to the native engine, and no files left behind."""
import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from keras_xai.canonize import UnsupportedLayerError
from keras_xai.engines import WorkerCallError, WorkerCrashedError, WorkerTimeoutError

from engine_test_models import images

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small():
    import native_test_models
    return native_test_models.conv_net(seed=1)


def _x(n=3):
    return images(0, (n, 8, 8, 3))


def test_worker_is_reused_and_survives_a_kill(small):
    analyzer = keras_xai.create_analyzer("lrp.z", small, engine="innvestigate")
    first = analyzer.analyze(_x())
    worker = analyzer.worker
    pid, starts = worker.pid, worker.starts
    other = keras_xai.create_analyzer("gradient", small, engine="innvestigate")
    other.analyze(_x())
    assert other.worker is worker and worker.pid == pid  # one process serves every analyzer
    os.kill(pid, 9)
    again = analyzer.analyze(_x())
    np.testing.assert_array_equal(again, first)
    assert worker.starts == starts + 1 and worker.pid != pid


def test_a_crash_during_a_call_is_reported_and_the_next_call_works(small):
    analyzer = keras_xai.create_analyzer("lrp.z", small, engine="innvestigate")
    expected = analyzer.analyze(_x())
    with pytest.raises(WorkerCrashedError, match="boom from the worker") as caught:
        analyzer.worker.call({"op": "debug", "action": "exit", "message": "boom from the worker", "code": 7})
    assert "exit code 7" in str(caught.value)
    np.testing.assert_array_equal(analyzer.analyze(_x()), expected)


def test_a_hanging_worker_is_killed_after_the_timeout(small):
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", small, engine="deeplift", timeout=60)
    expected = analyzer.analyze(_x())
    worker = analyzer.worker
    with pytest.raises(WorkerTimeoutError, match="did not answer within 1 s"):
        worker.call({"op": "debug", "action": "sleep", "seconds": 600}, timeout=1)
    assert worker.pid is None
    np.testing.assert_array_equal(analyzer.analyze(_x()), expected)


def test_an_exception_in_the_worker_keeps_the_worker(small):
    analyzer = keras_xai.create_analyzer("gradient", small, engine="innvestigate")
    analyzer.analyze(_x())
    pid = analyzer.worker.pid
    with pytest.raises(WorkerCallError, match="requested failure"):
        analyzer.worker.call({"op": "debug", "action": "raise"})
    assert analyzer.worker.pid == pid


def test_a_model_innvestigate_cannot_handle_names_the_layer():
    inputs = keras.Input((6,), name="input")
    hidden = keras.layers.Dense(4, activation="tanh", name="tanh_layer")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    analyzer = keras_xai.create_analyzer("deconvnet", model, engine="innvestigate")
    with pytest.raises(UnsupportedLayerError, match="'tanh_layer' \\(Dense\\)"):
        analyzer.analyze(np.ones((2, 6), np.float32))
    # The residual rules refuse what they cannot treat as a linear layer, while the graph is built.
    inputs = keras.Input((4, 4, 2), name="input")
    rows = keras.layers.BatchNormalization(axis=1, name="bn_rows")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten(name="flat")(rows)))
    analyzer = keras_xai.create_analyzer("lrp.alpha_1_beta_0", model, engine="innvestigate")
    with pytest.raises(UnsupportedLayerError, match=r"'bn_rows' \(BatchNormalization\) normalises axis \[1\]"):
        analyzer.analyze(np.ones((1, 4, 4, 2), np.float32))
    # Upstream's own BatchNorm rule fails on it while the graph is built: the layer is named too.
    upstream = keras_xai.create_analyzer("lrp.alpha_1_beta_0", model, engine="innvestigate", residual_rules=False)
    with pytest.raises(UnsupportedLayerError, match=r"innvestigate failed on layer 'bn_rows' \(BatchNormalization\)"):
        upstream.analyze(np.ones((1, 4, 4, 2), np.float32))


def test_a_model_deeplift_cannot_handle_names_the_layer():
    inputs = keras.Input((5, 4), name="input")
    recurrent = keras.layers.LSTM(3, name="lstm_1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(recurrent))
    with pytest.raises(UnsupportedLayerError, match="'lstm_1' \\(LSTM\\)"):
        keras_xai.create_analyzer("deep_lift.rescale", model, engine="deeplift")
    inputs = keras.Input((6,), name="input")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="elu", name="elu_out")(inputs))
    with pytest.raises(UnsupportedLayerError, match="elu_out"):
        keras_xai.create_analyzer("deep_lift.reveal_cancel", model, engine="deeplift")


def test_wrong_parameters_are_refused_before_any_worker_runs(small):
    with pytest.raises(TypeError, match="unexpected parameter"):
        keras_xai.create_analyzer("lrp.z", small, engine="innvestigate", epsilon=0.1)
    with pytest.raises(TypeError, match="unexpected parameter"):
        keras_xai.create_analyzer("deep_lift.rescale", small, engine="deeplift", alpha=1)
    with pytest.raises(ValueError, match="not available in the native engine; use engine='innvestigate'"):
        keras_xai.create_analyzer("gradient.baseline", small)
    with pytest.raises(ValueError, match="not available in the innvestigate engine; use engine='native' or engine='deeplift'"):
        keras_xai.create_analyzer("deep_lift.rescale", small, engine="innvestigate")
    with pytest.raises(ValueError, match="float32"):
        keras_xai.create_analyzer("lrp.z", small, engine="innvestigate", dtype="float64")
    with pytest.raises(ValueError, match="softmax"):
        softmax = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        keras_xai.create_analyzer("gradient", softmax, engine="innvestigate")


def test_list_analyzers_reports_the_engines():
    offered = {info.name: set(info.engines) for info in keras_xai.list_analyzers()}
    assert {"native", "innvestigate"} <= offered["lrp.alpha_1_beta_0"]
    assert {"native", "innvestigate"} <= offered["smoothgrad"]
    assert "innvestigate" in offered["rect_grad"] and "innvestigate" in offered["lrp.sequential_preset_b_flat_until_idx"]
    for name in ("deep_lift.rescale", "deep_lift.reveal_cancel", "deep_lift.ablation"):
        assert "deeplift" in offered[name]
    import innvestigate  # noqa: F401  (only the list of names; nothing runs in this process)
    from innvestigate.analyzer import analyzers
    assert set(analyzers) <= {name for name, engines in offered.items() if "innvestigate" in engines}


def test_two_engines_alongside_the_native_one(small):
    x = _x(4)
    native = keras_xai.create_analyzer("lrp.z", small)
    before = native.analyze(x)
    innvestigate = keras_xai.create_analyzer("lrp.z", small, engine="innvestigate")
    deeplift = keras_xai.create_analyzer("deep_lift.reveal_cancel", small, engine="deeplift")
    for _ in range(2):
        theirs = innvestigate.analyze(x)
        contributions = deeplift.analyze(x, neuron_selection=1)
        np.testing.assert_array_equal(native.analyze(x), before)
    assert tf.executing_eagerly()
    assert np.abs(theirs - before).max() <= 1e-4 * np.abs(before).max()
    delta = small(x).numpy()[:, 1] - small(np.zeros_like(x)).numpy()[:, 1]
    np.testing.assert_allclose(contributions.reshape(4, -1).sum(1), delta, rtol=1e-5, atol=1e-6)
    assert innvestigate.worker is not deeplift.worker
    assert innvestigate.worker.alive and deeplift.worker.alive


def test_only_model_files_stay_while_running_and_they_go_with_their_analyzers(small):
    analyzer = keras_xai.create_analyzer("gradient", small, engine="innvestigate")
    analyzer.analyze(_x())
    folder = analyzer.worker.directory
    assert all(name.endswith(".h5") for name in os.listdir(folder)), os.listdir(folder)
    path = analyzer._model_path
    twin = keras_xai.create_analyzer("lrp.z", small, engine="innvestigate")
    assert twin._model_path == path  # same model, same weights: saved once
    del analyzer
    gc.collect()
    assert os.path.exists(path)
    del twin
    gc.collect()
    assert not os.path.exists(path)


def test_an_analyzer_finalized_while_a_model_is_saved_does_not_deadlock(small, monkeypatch):
    """Saving a model for a new analyzer can run the garbage collector, which finalizes a dead
    analyzer whose release needs the lock the save is holding (this hung a test run)."""
    import threading

    import native_test_models
    dead = keras_xai.create_analyzer("gradient", small, engine="innvestigate")
    dead_path = dead._model_path
    dead.cycle = dead  # only the cycle collector frees it: inside model.save below
    del dead
    original_save = keras.Model.save

    def save_after_a_collection(self, *args, **kwargs):
        gc.collect()
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_after_a_collection)
    created = []
    other_model = native_test_models.conv_net(seed=21)
    thread = threading.Thread(target=lambda: created.append(
        keras_xai.create_analyzer("lrp.z", other_model, engine="innvestigate")), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "creating an analyzer deadlocked while a dead one was finalized"
    assert created and not os.path.exists(dead_path)
    monkeypatch.undo()
    np.testing.assert_array_equal(created[0].analyze(_x()), keras_xai.create_analyzer(
        "lrp.z", other_model, engine="innvestigate").analyze(_x()))


def _randomized_copy_weights(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.3, size=w.shape).astype(w.dtype) for w in model.get_weights()]


@pytest.mark.parametrize("engine,method", [("innvestigate", "lrp.alpha_2_beta_1"),
                                           ("deeplift", "deep_lift.reveal_cancel")])
def test_every_call_uses_the_current_weights(engine, method):
    """set_weights between calls (as the cascading randomization does): the reused analyzer gives
    what a freshly created one gives, and its previous copy of the model is deleted."""
    import native_test_models
    model = native_test_models.conv_net(seed=11)
    x = _x()
    analyzer = keras_xai.create_analyzer(method, model, engine=engine)
    before = analyzer.analyze(x, neuron_selection=1)
    old_path = analyzer._model_path
    model.set_weights(_randomized_copy_weights(model, 3))
    after = analyzer.analyze(x, neuron_selection=1)
    fresh = keras_xai.create_analyzer(method, model, engine=engine)
    np.testing.assert_array_equal(after, fresh.analyze(x, neuron_selection=1))
    assert np.abs(after - before).max() > 1e-3 * np.abs(before).max()
    assert not os.path.exists(old_path) and fresh._model_path == analyzer._model_path
    # relevances and propagate_from see the new weights too.
    layer = "conv1"
    vectors = np.random.default_rng(2).normal(size=(len(x), 6, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(fresh.relevances(x, 1)["input"], after)
    # A one-element change of one weight is noticed (the check is exact, not a sample).
    kernel = model.get_layer("conv1").kernel
    values = kernel.numpy()
    values[1, 1, 0, 0] += 0.5
    kernel.assign(values)
    changed = analyzer.relevances(x, 1)
    np.testing.assert_array_equal(changed["input"],
                                  keras_xai.create_analyzer(method, model, engine=engine).analyze(x, 1))
    assert not np.array_equal(changed["input"], after)
    kernel.assign(values - np.eye(9 * 3 * 4, dtype=np.float32)[40].reshape(values.shape) * 0.5)
    np.testing.assert_array_equal(analyzer.propagate_from(x, layer, vectors)["input"],
                                  keras_xai.create_analyzer(method, model, engine=engine).propagate_from(
                                      x, layer, vectors)["input"])


def test_weight_check_notices_a_one_ulp_change():
    from keras_xai.engines.base import weight_watch
    import native_test_models
    model = native_test_models.conv_net(seed=12)
    watch = weight_watch(model)
    assert weight_watch(model) is watch
    version = watch.check(model)
    assert watch.check(model) == version
    kernel = model.get_layer("conv1").kernel
    values = kernel.numpy()
    values[0, 0, 0, 0] = np.nextafter(values[0, 0, 0, 0], np.float32(np.inf))
    kernel.assign(values)
    assert watch.check(model) == version + 1
    assert watch.check(model) == version + 1


def test_no_files_or_processes_are_left_behind_at_exit():
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {native!r})
        import numpy as np, keras_xai, native_test_models
        model = native_test_models.conv_net(seed=2)
        x = np.ones((2, 8, 8, 3), np.float32)
        a = keras_xai.create_analyzer("gradient", model, engine="innvestigate")
        b = keras_xai.create_analyzer("deep_lift.rescale", model, engine="deeplift")
        a.analyze(x); b.analyze(x)
        print("FOLDERS", a.worker.directory, b.worker.directory, a.worker.pid, b.worker.pid)
    """).format(native=str(REPOSITORY / "tests" / "native"))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                               cwd=REPOSITORY)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("FOLDERS"))
    _, first, second, pid_a, pid_b = line.split()
    assert not os.path.exists(first) and not os.path.exists(second)
    for pid in (int(pid_a), int(pid_b)):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
def test_a_terminated_caller_leaves_no_files_or_processes():
    """SIGTERM skips atexit: the worker notices its caller is gone and deletes the folder itself."""
    import signal
    import time
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, {native!r})
        import numpy as np, keras_xai, native_test_models
        model = native_test_models.conv_net(seed=2)
        a = keras_xai.create_analyzer("gradient", model, engine="innvestigate")
        a.analyze(np.ones((2, 8, 8, 3), np.float32))
        print("FOLDER", a.worker.directory, a.worker.pid, flush=True)
        time.sleep(600)
    """).format(native=str(REPOSITORY / "tests" / "native"))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=REPOSITORY)
    try:
        line = next(line for line in process.stdout if line.startswith("FOLDER"))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    _, folder, pid = line.split()
    deadline = time.monotonic() + 30
    while (os.path.exists(folder) or _alive(int(pid))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(folder)
    assert not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_folders_of_dead_callers_are_removed_by_the_next_worker(tmp_path, monkeypatch):
    """A caller killed together with its workers cannot clean up; the next caller's worker does."""
    from keras_xai.engines import worker as worker_module
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    stale = tmp_path / f"keras_xai_deeplift_{dead_pid}_abc"
    stale.mkdir()
    (stale / "model.h5").write_bytes(b"left behind")
    alive = tmp_path / f"keras_xai_deeplift_{os.getpid()}_def"
    alive.mkdir()
    unrelated = tmp_path / "keras_xai_notes"
    unrelated.mkdir()
    monkeypatch.setenv("KERAS_XAI_WORKER_TMPDIR", str(tmp_path))
    fresh = worker_module.Worker("test", "keras_xai.engines.deeplift_worker_main")  # not started
    try:
        assert not stale.exists() and alive.exists() and unrelated.exists()
        assert os.path.basename(fresh.directory).startswith(f"keras_xai_test_{os.getpid()}_")
    finally:
        fresh.close()
    assert not os.path.exists(fresh.directory)
