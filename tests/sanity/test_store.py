"""Stored results are reused only when provably the same, and resumed runs equal uninterrupted ones byte
for byte (sanity.store, sanity.run_key)."""
import filecmp
import shutil

import numpy as np
import pytest

import keras_xai
from architectures.models import cifar_net
from architectures.run_lock import RunLock, RunLockedError
from sanity import csc_experiment, experiment_inputs, experiments, methods
from sanity.store import ImageResults, StoredResultsError, npz_bytes

SPECS = methods.by_label(["Gradient", "LRP-z", "SmoothGrad"])  # SmoothGrad: noise drawn per batch


def small_model(seed):
    net = keras_xai.model_wo_softmax(cifar_net(input_shape=(12, 12, 1)))
    rng = np.random.default_rng(seed)
    net.set_weights([(0.2 * rng.standard_normal(w.shape)).astype("float32") for w in net.get_weights()])
    return net


@pytest.fixture(scope="module")
def model():
    return small_model(0)


def make_inputs(n=7, fit=False, change=None):
    rng = np.random.default_rng(1)
    images = rng.random((n, 12, 12, 1)).astype(np.float32)
    if change is not None:
        images[change, 0, 0, 0] += 0.5
    return experiment_inputs.ExperimentInputs(images, rng.integers(0, 10, n), np.arange(100, 100 + n), (0.0, 1.0),
                                              rng.random((30, 12, 12, 1)).astype(np.float32) if fit else None)


def run(model, inputs, out, specs=SPECS, **options):
    options = {"seed": 3, "progress": False, "log": lambda message: None, **options}
    return experiments.random_logit(model, inputs, specs, out=out, **options)


def same_files(a, b):
    """Every file under folder ``a`` has a byte-identical twin under ``b`` and vice versa."""
    names_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != ".lock")
    names_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != ".lock")
    assert names_a == names_b
    for name in names_a:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_npz_bytes_depend_on_the_arrays_only():
    arrays = {"ssim": np.arange(3.0), "label": np.array(4)}
    first = npz_bytes(arrays)
    assert first == npz_bytes({k: v.copy() for k, v in arrays.items()})
    import io
    with np.load(io.BytesIO(first)) as loaded:
        np.testing.assert_array_equal(loaded["ssim"], arrays["ssim"])


@pytest.mark.parametrize("experiment", ["random_logit", "csc"])
def test_resume_with_another_chunk_size_gives_identical_files(model, tmp_path, experiment):
    """Interrupted twice (files of a chunk lost, as after SIGKILL between two saves) and resumed with
    other chunk sizes: every file equals the uninterrupted run's."""
    inputs = make_inputs()

    def go(out, chunk_size):
        if experiment == "random_logit":
            return run(model, inputs, out, chunk_size=chunk_size)
        return csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:2], ["fc6", "conv3"], n_vectors=3,
                                                            seed=3, out=out, chunk_size=chunk_size, progress=False,
                                                            log=lambda message: None)

    go(tmp_path / "reference", 3)
    resumed = tmp_path / "resumed"
    go(resumed, 3)
    folder = resumed / experiment
    stored = sorted(folder.glob("*.npz"))
    for path in stored[4:]:  # the last chunk is lost, and one image of the chunk before
        path.unlink()
    stored[2].unlink()
    messages = []
    if experiment == "random_logit":
        run(model, inputs, resumed, chunk_size=2, log=messages.append)
    else:
        csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:2], ["fc6", "conv3"], n_vectors=3, seed=3,
                                                     out=resumed, chunk_size=5, progress=False, log=messages.append)
    assert any("batch size 3" in message for message in messages)
    same_files(tmp_path / "reference", resumed)


def test_changed_weights_are_refused_and_overwrite_recomputes(model, tmp_path):
    run(model, make_inputs(), tmp_path)
    other = small_model(1)
    with pytest.raises(StoredResultsError, match=r"model\.weights: .* -> .*--overwrite"):
        run(other, make_inputs(), tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "random_logit").glob("*.npz")}
    overwritten = run(other, make_inputs(), tmp_path, overwrite=True)
    fresh = run(other, make_inputs(), tmp_path / "fresh")
    np.testing.assert_array_equal(overwritten.ssim, fresh.ssim)
    assert all((tmp_path / "random_logit" / name).read_bytes() != data for name, data in before.items())


def test_a_changed_image_is_named(model, tmp_path):
    run(model, make_inputs(), tmp_path)
    with pytest.raises(StoredResultsError, match=r"pixels or label of image\(s\) \[102\] differ"):
        run(model, make_inputs(change=2), tmp_path)


def test_other_images_method_parameters_and_patterns_are_refused(model, tmp_path):
    run(model, make_inputs(), tmp_path)
    with pytest.raises(StoredResultsError, match="images: 7 stored .* -> 5 now"):
        run(model, make_inputs(n=5), tmp_path)
    with pytest.raises(StoredResultsError, match="methods"):
        run(model, make_inputs(), tmp_path, specs=SPECS[:2])
    with pytest.raises(StoredResultsError, match="engine"):
        run(model, make_inputs(), tmp_path, engine="other")
    pattern_specs = methods.by_label(["PatternNet"])
    fitted = make_inputs(fit=True)
    run(model, fitted, tmp_path / "patterns", specs=pattern_specs)
    given = make_inputs(fit=True)
    patterns = experiment_inputs.fitted_patterns(model, given)
    experiment_inputs.use_patterns(model, given, {name: 2 * value for name, value in patterns.items()})
    with pytest.raises(StoredResultsError, match=r"patterns\.given: null -> "):
        run(model, given, tmp_path / "patterns", specs=pattern_specs)


def test_a_swapped_file_or_a_directory_in_its_place_is_refused(model, tmp_path):
    run(model, make_inputs(), tmp_path)
    folder = tmp_path / "random_logit"
    shutil.copy(folder / "000101.npz", folder / "000102.npz")  # a valid file of another image
    with pytest.raises(StoredResultsError, match="000102.npz holds the results of image 101, not of image 102"):
        run(model, make_inputs(), tmp_path)
    (folder / "000102.npz").unlink()
    (folder / "000102.npz").mkdir()
    with pytest.raises(StoredResultsError, match="000102.npz is a directory"):
        run(model, make_inputs(), tmp_path)
    (folder / "000102.npz").rmdir()
    run(model, make_inputs(), tmp_path / "other", seed=4)  # another run's file for the same image
    shutil.copy(tmp_path / "other" / "random_logit" / "000101.npz", folder / "000101.npz")
    with pytest.raises(StoredResultsError, match="000101.npz was written by another run"):
        run(model, make_inputs(), tmp_path)


def test_a_refused_file_leaves_the_folder_unlocked(model, tmp_path):
    run(model, make_inputs(), tmp_path)
    folder = tmp_path / "random_logit"
    shutil.copy(folder / "000101.npz", folder / "000102.npz")
    with pytest.raises(StoredResultsError) as refused:  # the traceback keeps the run's objects alive
        run(model, make_inputs(), tmp_path)
    messages = []
    with RunLock(folder, log=messages.append):
        assert messages == []  # released on the error path, not left behind as a stale lock
    assert refused.value


def test_overwrite_applies_another_batch_size(model, tmp_path):
    import json

    run(model, make_inputs(), tmp_path, chunk_size=3)
    messages = []
    run(model, make_inputs(), tmp_path, chunk_size=2, overwrite=True, log=messages.append)
    assert json.loads((tmp_path / "random_logit" / "run.json").read_text())["key"]["batch_size"] == 2
    assert any("batch_size: 3 -> 2" in message for message in messages)
    run(model, make_inputs(), tmp_path / "fresh", chunk_size=2)
    same_files(tmp_path / "random_logit", tmp_path / "fresh" / "random_logit")


def test_a_damaged_run_record_is_refused_unless_overwritten(model, tmp_path):
    damaged, fresh = tmp_path / "damaged", tmp_path / "fresh"
    run(model, make_inputs(), damaged)
    (damaged / "random_logit" / "run.json").write_text("{not json")
    with pytest.raises(StoredResultsError, match="run.json is damaged"):
        run(model, make_inputs(), damaged)
    run(model, make_inputs(), damaged, overwrite=True)
    run(model, make_inputs(), fresh)
    same_files(damaged, fresh)


def test_an_experiment_folder_is_locked_while_it_runs(model, tmp_path):
    with RunLock(tmp_path / "random_logit"):
        with pytest.raises(RunLockedError, match="in use by another run"):
            run(model, make_inputs(), tmp_path)
    run(model, make_inputs(), tmp_path)  # released: runs


def test_results_of_an_earlier_version_are_refused(model, tmp_path):
    folder = tmp_path / "random_logit"
    folder.mkdir()
    np.savez(folder / "000100.npz", ssim=np.zeros(3))
    with pytest.raises(StoredResultsError, match="without run.json"):
        run(model, make_inputs(), tmp_path)


def test_image_results_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoredResultsError, match="is a file"):
        ImageResults(tmp_path / "file", {"batch_size": 1})
