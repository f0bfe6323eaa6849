"""The project's table of bad inputs: each must end in one ``error: ...`` line naming the culprit and
exit code 2, never a traceback, and the parse-time ones before any model or data is loaded.

A case is ``(id, cli, argv, exit code, text the error line must contain)``. ``cli`` names an entry of
``MAINS``; ``{tmp}`` in an argument is a folder holding the files of ``bad_files`` below, ``{weights}`` a
valid weights file of the MNIST ``cifar_net``. The API's cases (``API_CASES``) give an exception type and
message instead. Stored results of other settings and a folder in use by another run are exercised end to
end in ``tests/sanity/test_cli.py`` and ``tests/sanity/test_store.py``.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from architectures.__main__ import main as architectures_main
from lstm_svd.cli import main as lstm_svd_main
from sanity.cli import main as sanity_main

MAINS = {"lstm_svd": lstm_svd_main, "architectures": architectures_main, "sanity": sanity_main}
SANITY = ["csc", "--out", "{tmp}/out", "--quiet"]
LATE = ["random-logit", "--n-images", "1", "--methods", "Gradient", "--out", "{tmp}/out", "--quiet"]

LSTM = ["lowrank", "--out", "{tmp}/out"]  # a command that would load the classifier and MNIST
TRAIN = ["train", "cifar_net"]

CASES = [
    # --- python -m lstm_svd: counts >= 1 and no more images than MNIST has
    ("lstm-epochs-0", "lstm_svd", [*LSTM, "--epochs", "0"], 2, "--epochs: must be an integer >= 1, got 0"),
    ("lstm-epochs-negative", "lstm_svd", [*LSTM, "--epochs", "-1"], 2, "--epochs: must be an integer >= 1, got -1"),
    ("lstm-epochs-not-a-number", "lstm_svd", [*LSTM, "--epochs", "two"], 2, "--epochs: must be an integer >= 1, "
                                                                            "got 'two'"),
    ("n-train-0", "lstm_svd", [*LSTM, "--n-train", "0"], 2, "--n-train: must be an integer in 6..60000"),
    ("n-train-more-than-mnist", "lstm_svd", [*LSTM, "--n-train", "70000"], 2, "MNIST has 60000 training images"),
    ("n-train-too-few-for-t-sne", "lstm_svd", [*LSTM, "--n-train", "5"], 2, "5-NN score need 6), got 5"),
    ("n-test-negative", "lstm_svd", [*LSTM, "--n-test", "-5"], 2, "--n-test: must be an integer in 6..10000"),
    ("n-test-more-than-mnist", "lstm_svd", [*LSTM, "--n-test", "10001"], 2, "MNIST has 10000 test images"),
    ("tsne-samples-0", "lstm_svd", ["embed", "--tsne-samples", "0"], 2, "--tsne-samples: must be an integer in 6.."),
    ("pca-points-0", "lstm_svd", ["output-layer", "--pca-points", "0"], 2, "--pca-points: must be an integer in 1.."),
    ("ae-epochs-0", "lstm_svd", ["autoencoder", "--ae-epochs", "0"], 2, "--ae-epochs: must be an integer >= 1"),
    ("ae-train-0", "lstm_svd", ["autoencoder", "--ae-train", "0"], 2, "--ae-train: must be an integer in 1..60000"),
    ("vae-epochs-0", "lstm_svd", ["vae", "--vae-epochs", "0"], 2, "--vae-epochs: must be an integer >= 1"),
    ("vae-train-0", "lstm_svd", ["vae", "--vae-train", "0"], 2, "--vae-train: must be an integer in 6..60000"),
    ("latent-dim-0", "lstm_svd", ["vae", "--latent-dim", "0"], 2, "--latent-dim: must be an integer >= 2"),
    ("latent-dim-1-no-t-sne", "lstm_svd", ["vae", "--latent-dim", "1"], 2, "t-SNE of the latent means needs 2"),
    ("sample-epochs-0", "lstm_svd", ["vae", "--sample-epochs", "0"], 2, "--sample-epochs: must be an integer >= 1"),
    ("decoder-epochs-0", "lstm_svd", ["gates", "--decoder-epochs", "0"], 2, "--decoder-epochs: must be an integer"),
    ("gate-test-0", "lstm_svd", ["gates", "--gate-test", "0"], 2, "--gate-test: must be an integer in 1..10000"),
    ("gate-test-more-than-mnist", "lstm_svd", ["gates", "--gate-test", "20000"], 2, "MNIST has 10000 test images"),
    # --- seeds, rows, directions, names
    ("lstm-seed-negative", "lstm_svd", [*LSTM, "--seed", "-1"], 2, "--seed: must be an integer in 0..4294967295"),
    ("lstm-seed-over-32-bits", "lstm_svd", [*LSTM, "--seed", str(2 ** 32)], 2, "seeds are 32-bit"),
    ("reference-row-0", "lstm_svd", ["output-layer", "--reference-row", "0"], 2, "--reference-row: must be an "
                                                                                  "integer in 1..10, got 0"),
    ("reference-row-11", "lstm_svd", ["output-layer", "--reference-row", "11"], 2, "in 1..10, got 11"),
    ("keep-not-a-number", "lstm_svd", [*LSTM, "--keep", "1,2,x"], 2, "--keep: takes comma-separated integers in "
                                                                     "1..10 such as 1,2,3,4,6, got '1,2,x'"),
    ("keep-direction-0", "lstm_svd", [*LSTM, "--keep", "0,1"], 2, "--keep: takes integers in 1..10, got 0"),
    ("keep-direction-11", "lstm_svd", [*LSTM, "--keep", "2,11"], 2, "--keep: takes integers in 1..10, got 11"),
    ("keep-repeated", "lstm_svd", [*LSTM, "--keep", "1,2,1"], 2, "--keep: repeats 1 in '1,2,1'"),
    ("keep-empty", "lstm_svd", [*LSTM, "--keep", ""], 2, "--keep: needs at least one value"),
    ("lstm-recipe-unknown", "lstm_svd", [*LSTM, "--recipe", "fast"], 2, "--recipe: invalid choice: 'fast'"),
    ("trajectory-unknown", "lstm_svd", ["train", "--trajectory", "fast"], 2, "--trajectory: invalid choice: 'fast'"),
    ("gate-family-unknown", "lstm_svd", ["gates", "--gate-families", "first-k,middle-k"], 2,
     "--gate-families: unknown 'middle-k'; choose from first-k, last-k, all-except-one, just-one"),
    ("gate-families-empty", "lstm_svd", ["gates", "--gate-families", ","], 2, "--gate-families: needs at least one"),
    ("gate-family-repeated", "lstm_svd", ["gates", "--gate-families", "first-k,first-k"], 2, "repeats first-k"),
    ("lstm-command-unknown", "lstm_svd", ["lowrnak"], 2, "invalid choice: 'lowrnak'"),
    # --- files and folders
    ("weights-missing", "lstm_svd", [*LSTM, "--weights", "{tmp}/missing.h5"], 2, "--weights: {tmp}/missing.h5 does "
                                                                                 "not exist"),
    ("weights-is-a-folder", "lstm_svd", [*LSTM, "--weights", "{tmp}/a_folder"], 2, "{tmp}/a_folder is a folder"),
    ("out-is-a-file", "lstm_svd", ["lowrank", "--out", "{tmp}/a_file"], 2, "--out: {tmp}/a_file is a file"),
    ("out-inside-a-file", "lstm_svd", ["lowrank", "--out", "{tmp}/a_file/out"], 2, "{tmp}/a_file/out cannot be "
                                                                                   "created: {tmp}/a_file is a file"),
    ("cache-dir-is-a-file", "lstm_svd", [*LSTM, "--cache-dir", "{tmp}/a_file"], 2, "--cache-dir: {tmp}/a_file is a "
                                                                                   "file"),
    # found when the file is read (the classifier is built, the data not yet loaded)
    ("weights-not-hdf5", "lstm_svd", ["output-layer", "--out", "{tmp}/out", "--weights", "{tmp}/damaged.h5"], 2,
     "{tmp}/damaged.h5 is not a readable HDF5 file"),
    ("weights-keras-not-a-zip", "lstm_svd", ["output-layer", "--out", "{tmp}/out", "--weights", "{tmp}/damaged.keras"],
     2, "{tmp}/damaged.keras is not a readable .keras model file"),
    # --- python -m architectures
    ("train-epochs-0", "architectures", [*TRAIN, "--epochs", "0"], 2, "--epochs: must be an integer >= 1, got 0"),
    ("train-epochs-negative", "architectures", ["train", "lstm_classifier", "--epochs", "-1"], 2,
     "--epochs: must be an integer >= 1, got -1"),
    ("train-seed-negative", "architectures", [*TRAIN, "--seed", "-1"], 2, "--seed: must be an integer in 0.."),
    ("train-recipe-of-another-model", "architectures", [*TRAIN, "--recipe", "thesis"], 2,
     "--recipe: cifar_net has no recipe 'thesis'; choose one of mnist, paper"),
    ("train-dataset-not-trainable", "architectures", ["train", "lstm_classifier", "--dataset", "cifar10"], 2,
     "--dataset: lstm_classifier cannot be trained on cifar10"),
    ("train-architecture-unknown", "architectures", ["train", "vgg16"], 2, "invalid choice: 'vgg16'"),
    ("train-data-dir-missing", "architectures", [*TRAIN, "--dataset", "cifar10", "--data-dir", "{tmp}/none"], 2,
     "--data-dir: {tmp}/none does not exist"),
    ("train-data-dir-is-a-file", "architectures", [*TRAIN, "--dataset", "cifar10", "--data-dir", "{tmp}/a_file"], 2,
     "--data-dir: {tmp}/a_file is a file"),
    ("train-data-dir-for-mnist", "architectures", [*TRAIN, "--data-dir", "{tmp}/a_folder"], 2,
     "--data-dir: only --dataset cifar10 reads a data folder"),
    # found when the data is read
    ("train-data-dir-without-batches", "architectures", [*TRAIN, "--dataset", "cifar10", "--data-dir",
                                                         "{tmp}/a_folder"], 2,
     "no CIFAR-10 python batches in {tmp}/a_folder"),
    ("train-data-dir-with-empty-batches", "architectures", [*TRAIN, "--dataset", "cifar10", "--data-dir",
                                                            "{tmp}/empty_cifar"], 2,
     "{tmp}/empty_cifar/data_batch_1 is not a CIFAR-10 python batch (EOFError"),
    ("train-data-dir-with-garbage-batches", "architectures", [*TRAIN, "--dataset", "cifar10", "--data-dir",
                                                              "{tmp}/garbage_cifar"], 2,
     "{tmp}/garbage_cifar/data_batch_1 is not a CIFAR-10 python batch"),
    # --- python -m sanity: counts, indices, names, files (all before any model or data is loaded)
    ("sanity-n-images-0", "sanity", [*SANITY, "--n-images", "0"], 2, "--n-images: must be an integer >= 1, got 0"),
    ("sanity-n-images-negative", "sanity", [*SANITY, "--n-images", "-1"], 2, "--n-images: must be an integer >= 1"),
    ("sanity-n-images-more-than-mnist", "sanity", [*SANITY, "--n-images", "20000"], 2,
     "--n-images 20000: --dataset mnist has 10000 test images"),
    ("sanity-n-images-more-than-samples", "sanity", [*SANITY, "--dataset", "samples", "--n-images", "21"], 2,
     "--dataset samples has 20 test images"),
    ("sanity-engine-unknown", "sanity", [*SANITY, "--engine", "bogus"], 2, "--engine: invalid choice: 'bogus'"),
    ("sanity-seed-negative", "sanity", [*SANITY, "--seed", "-1"], 2, "--seed: must be an integer in 0..4294967295"),
    ("sanity-chunk-size-0", "sanity", ["random-logit", "--chunk-size", "0"], 2,
     "--chunk-size: must be an integer >= 1, got 0"),
    ("sanity-image-out-of-range", "sanity", ["two-classes", "--n-images", "3", "--image", "99"], 2,
     "--image 99 is not among the 3 chosen images (0 .. 2)"),
    ("sanity-image-negative", "sanity", ["two-classes", "--image", "-1"], 2, "--image: must be an integer >= 0"),
    ("sanity-one-class", "sanity", ["two-classes", "--classes", "1"], 2, "--classes takes two distinct class "
                                                                          "indices, got 1"),
    ("sanity-classes-repeated", "sanity", ["two-classes", "--classes", "3,3"], 2, "--classes: repeats 3"),
    ("sanity-class-out-of-range", "sanity", ["two-classes", "--classes", "3,10"], 2,
     "--classes 3,10: cifar_net has classes 0 .. 9"),
    ("sanity-classes-not-numbers", "sanity", ["two-classes", "--classes", "cat,dog"], 2,
     "--classes: takes comma-separated integers"),
    ("sanity-repetitions-0", "sanity", ["simulate", "--repetitions", "0"], 2, "--repetitions: must be an integer >= 1"),
    ("sanity-method-unknown", "sanity", [*SANITY, "--methods", "Gradient,Bogus"], 2,
     "--methods: unknown 'Bogus'; choose from Gradient, SmoothGrad"),
    ("sanity-methods-empty", "sanity", [*SANITY, "--methods", ","], 2, "--methods: needs at least one value"),
    ("sanity-method-repeated", "sanity", [*SANITY, "--methods", "Gradient,Gradient"], 2, "repeats Gradient"),
    ("sanity-model-unknown", "sanity", [*SANITY, "--model", "vgg19"], 2, "--model: invalid choice: 'vgg19'"),
    ("sanity-model-and-dataset", "sanity", [*SANITY, "--model", "vgg16", "--dataset", "mnist"], 2,
     "--model vgg16 runs on --dataset samples or imagenet, not mnist"),
    ("sanity-imagenet-without-data-dir", "sanity", [*SANITY, "--model", "vgg16", "--dataset", "imagenet"], 2,
     "--dataset imagenet needs --data-dir"),
    ("sanity-imagenet-weights-on-cifar-net", "sanity", [*SANITY, "--weights", "imagenet"], 2,
     "--weights imagenet is for vgg16/resnet50"),
    ("sanity-weights-missing", "sanity", [*SANITY, "--weights", "{tmp}/missing.h5"], 2,
     "--weights: {tmp}/missing.h5 does not exist"),
    ("sanity-weights-is-a-folder", "sanity", [*SANITY, "--weights", "{tmp}/a_folder"], 2, "{tmp}/a_folder is a folder"),
    ("sanity-patterns-missing", "sanity", [*SANITY, "--patterns", "{tmp}/missing.npz"], 2,
     "--patterns: {tmp}/missing.npz does not exist"),
    ("sanity-data-dir-missing", "sanity", [*SANITY, "--dataset", "cifar10", "--data-dir", "{tmp}/none"], 2,
     "--data-dir: {tmp}/none does not exist"),
    ("sanity-n-fit-0", "sanity", [*SANITY, "--n-fit", "0"], 2, "--n-fit: must be an integer >= 1, got 0"),
    ("sanity-n-fit-more-than-mnist", "sanity", [*SANITY, "--n-fit", "70000"], 2,
     "--n-fit 70000: --dataset mnist has 60000 training images"),
    ("sanity-out-is-a-file", "sanity", ["csc", "--out", "{tmp}/a_file"], 2, "--out: {tmp}/a_file is a file"),
    ("sanity-command-unknown", "sanity", ["cs"], 2, "invalid choice: 'cs'"),
    # found when a file is read
    ("sanity-weights-not-hdf5", "sanity", [*LATE, "--weights", "{tmp}/damaged.h5"], 2,
     "{tmp}/damaged.h5 is not a readable HDF5 file"),
    ("sanity-weights-of-another-model", "sanity", [*LATE, "--weights", "{weights}", "--dataset", "samples"], 2,
     "could not be loaded into model 'cifar_net'"),
    ("sanity-patterns-not-npz", "sanity", [*LATE, "--weights", "{weights}", "--patterns", "{tmp}/damaged.keras"], 2,
     "--patterns: pattern file '{tmp}/damaged.keras' is not a .npz of arrays"),
    ("sanity-cifar-folder-without-batches", "sanity", [*LATE, "--weights", "{weights}", "--dataset", "cifar10",
                                                       "--data-dir", "{tmp}/a_folder"], 2,
     "no CIFAR-10 python batches in {tmp}/a_folder"),
]


@pytest.fixture
def bad_files(tmp_path, private_cache, monkeypatch):
    """A folder of files that are wrong as inputs; the run's working directory (nothing lands in the repo)."""
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("a file, not a folder\n")
    (tmp_path / "damaged.h5").write_bytes(b"not an HDF5 file")
    (tmp_path / "damaged.keras").write_bytes(b"not a zip archive")
    (tmp_path / "empty_cifar").mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / "empty_cifar" / name).touch()  # truncated to nothing
        (tmp_path / "garbage_cifar").mkdir(exist_ok=True)
        (tmp_path / "garbage_cifar" / name).write_bytes(b"garbage\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_main(cli: str, argv: list) -> int:
    """``main(argv)`` of ``cli`` in this process; argparse's exit becomes its code."""
    try:
        return MAINS[cli](argv)
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def mnist_weights(tmp_path_factory):
    """A valid weights file of the MNIST cifar_net (random weights)."""
    from architectures.models import cifar_net
    from keras_xai import graph

    model = cifar_net(input_shape=(28, 28, 1))
    path = tmp_path_factory.mktemp("weights") / f"cifar_net{graph.weights_suffix(model)}"
    model.save_weights(str(path))
    return path


@pytest.mark.parametrize("case_id, cli, argv, exit_code, text", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gives_one_error_line(case_id, cli, argv, exit_code, text, bad_files, mnist_weights, capsys):
    argv = [arg.format(tmp=bad_files, weights=mnist_weights) for arg in argv]
    assert run_main(cli, argv) == exit_code
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and text.format(tmp=bad_files) in errors[0], stderr
    assert "Traceback" not in stderr


def test_case_ids_are_unique():
    ids = [case[0] for case in CASES + API_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("module, argv, text", [
    ("lstm_svd", ["output-layer", "--quiet", "--weights", "{tmp}/damaged.h5", "--out", "{tmp}/out"],
     "is not a readable HDF5 file"),
    ("architectures", ["train", "cifar_net", "--epochs", "0", "--quiet"], "--epochs: must be an integer >= 1"),
])
def test_no_traceback_in_a_real_process(module, argv, text, bad_files):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", module, *[arg.format(tmp=bad_files) for arg in argv]],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (bad_files / "keras_xai_home" / "models").exists()  # nothing trained, nothing cached


# --- the keras_xai API: (id, call, exception type, text the message must contain)
def _dense(activation=None):
    from tensorflow import keras

    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, keras.layers.Dense(3, activation=activation, name="fc")(inputs))


def _conv(activation=None, size=6):
    from tensorflow import keras

    inputs = keras.Input((size, size, 1), name="x")
    return keras.Model(inputs, keras.layers.Conv2D(3, 6, activation=activation, name="conv")(inputs))


def _free_size_conv():
    from tensorflow import keras

    inputs = keras.Input((None, None, 1), name="x")
    hidden = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling2D(name="gap")(hidden)))


def _analyze(name, model, x, **params):
    import keras_xai

    return keras_xai.create_analyzer(name, model, **params).analyze(np.asarray(x, np.float32))


def _create(name, model, **params):
    import keras_xai

    return keras_xai.create_analyzer(name, model, **params)


X = np.ones((2, 4))
API_CASES = [
    ("api-unknown-method", lambda: _create("lrp.bogus", _dense()), ValueError, "unknown method 'lrp.bogus'. Did you"),
    ("api-unknown-engine", lambda: _create("gradient", _dense(), engine="bogus"), ValueError, "unknown engine 'bogus'"),
    ("api-not-a-model", lambda: _create("gradient", "model.h5"), TypeError, "expected a keras.Model, got builtins.str"),
    ("api-unknown-parameter", lambda: _create("gradient", _dense(), epsilon=1), TypeError,
     "gradient got unexpected parameter(s) ['epsilon']"),
    ("api-softmax-function-in-dense", lambda: _create("gradient", _dense(tf_softmax())), ValueError,
     "ends in a softmax ('fc'); gradient explains logits: use keras_xai.model_wo_softmax(model)"),
    ("api-softmax-in-conv", lambda: _create("lrp.z", _conv("softmax")), ValueError, "ends in a softmax ('conv')"),
    ("api-smoothgrad-count-not-integer", lambda: _create("smoothgrad", _dense(), augment_by_n=2.5), ValueError,
     "augment_by_n must be an integer >= 1, got 2.5"),
    ("api-ig-steps-0", lambda: _create("integrated_gradients", _dense(), steps=0), ValueError,
     "steps must be an integer >= 1, got 0"),
    ("api-alpha-beta-not-differing-by-1", lambda: _create("lrp.alpha_beta", _dense(), alpha=1, beta=1), ValueError,
     "alpha - beta = 1, got alpha=1.0, beta=1.0"),
    ("api-ig-reference-shape", lambda: _create("integrated_gradients", _dense(), reference_inputs=np.zeros(5)),
     ValueError, "reference_inputs of shape (5,) does not fit the model's samples (4,)"),
    ("api-input-shape", lambda: _analyze("gradient", _dense(), np.ones((2, 5))), ValueError,
     "x has shape (2, 5) but the model expects (batch, 4)"),
    ("api-input-too-small-for-kernel", lambda: _analyze("lrp.z", _free_size_conv(), np.ones((1, 2, 2, 1))), ValueError,
     "input of size (2, 2) is too small for layer 'conv' (Conv2D)"),
    ("api-input-not-finite", lambda: _analyze("gradient", _dense(), np.full((2, 4), np.nan)), ValueError,
     "x contains 8 NaN or Inf value(s)"),
    ("api-neuron-out-of-range", lambda: _create("gradient", _dense()).analyze(X.astype(np.float32), neuron_selection=5),
     ValueError, "neuron_selection 5 is out of range: the model has 3 output units (valid indices 0..2)"),
    ("api-neuron-count", lambda: _create("gradient", _dense()).analyze(X.astype(np.float32), neuron_selection=[1, 2, 0]),
     ValueError, "neuron_selection must be one int or one int per sample (shape (2,)), got shape (3,)"),
]


def tf_softmax():
    import tensorflow as tf

    return tf.nn.softmax


@pytest.mark.parametrize("case_id, call, error, text", API_CASES, ids=[case[0] for case in API_CASES])
def test_bad_api_input_raises_a_clear_error(case_id, call, error, text):
    with pytest.raises(error) as raised:
        call()
    assert text in str(raised.value)
