"""architectures.weights.load_weights_file: every file format a user may hand us, and every way it can be wrong.

The files are written in the test by the Keras at hand (and by tf-keras next to Keras 3 on today's stack).
"""
import json
import zipfile

import h5py
import numpy as np
import pytest
from tensorflow import keras

from architectures import models, weights
from architectures.weights import MissingWeightsFileError, WeightsFileError, load_weights_file
from keras_xai.graph import keras_major

KERAS = keras_major(keras.layers.Dense)


def lstm(seed: int, hidden_size: int = 10):
    keras.utils.set_random_seed(seed)
    return models.lstm_classifier(hidden_size=hidden_size)


def bigger_lstm(seed: int):
    """lstm_classifier with one more layer on top: its files hold arrays lstm_classifier has no place for."""
    model = lstm(seed)
    model.add(keras.layers.Dense(3, name="extra"))
    return model


def assert_same_weights(a, b):
    assert len(a.get_weights()) == len(b.get_weights())
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


def write(model, path, request):
    """``model``'s weights at ``path`` in the format its name says; ``*.keras2.h5``: Keras 2's own
    ``save_weights('x.h5')`` format (written by tf-keras on Keras 3, skipped without it)."""
    if path.name.endswith(".keras2.h5"):
        if KERAS >= 3:
            twin = request.getfixturevalue("twin_lstm_classifier")(model.get_layer("lstm1").units)
            if len(model.layers) > len(twin.layers):  # bigger_lstm
                twin.add(request.getfixturevalue("other_keras").layers.Dense(3, name="extra"))
            weights.set_layer_weights(twin, [w for _, w in weights.layer_weights(model)])
            model = twin
        model.save_weights(str(path))
    elif path.name.endswith(".weights.h5"):
        model.save_weights(str(path))
    else:
        model.save(str(path))  # .keras, or a legacy HDF5 model file for .h5
    return path


FORMATS = ["w.keras2.h5", "w.weights.h5", "m.keras", "m.h5"]


@pytest.mark.parametrize("name", FORMATS)
def test_loads_every_format(tmp_path, name, request):
    source = lstm(1)
    path = write(source, tmp_path / name, request)
    target = lstm(2)
    assert load_weights_file(target, path) == path
    assert_same_weights(source, target)


@pytest.mark.parametrize("written, named", [("w.keras2.h5", "old-cache.weights.h5"), ("w.weights.h5", "w.h5"),
                                            ("m.keras", "m.bin"), ("m.h5", "m.hdf5")])
def test_loads_files_whatever_their_name(tmp_path, written, named, request):
    # Each Keras picks its reader by the suffix; the contents decide here.
    source = lstm(1)
    path = write(source, tmp_path / written, request).rename(tmp_path / named)
    target = lstm(2)
    load_weights_file(target, path)
    assert_same_weights(source, target)


def test_missing_file(tmp_path):
    with pytest.raises(MissingWeightsFileError, match=f"weights file {tmp_path / 'none.h5'} does not exist"):
        load_weights_file(lstm(0), tmp_path / "none.h5")
    assert issubclass(MissingWeightsFileError, FileNotFoundError)


def test_directory(tmp_path):
    with pytest.raises(WeightsFileError, match=f"{tmp_path} is a directory; expected a weights or model file"):
        load_weights_file(lstm(0), tmp_path)


@pytest.mark.parametrize("damage", ["truncated .weights.h5", "truncated .keras", "not HDF5", "HDF5 without weights"])
def test_damaged_files(tmp_path, damage, request):
    if damage.startswith("truncated"):
        path = write(lstm(1), tmp_path / ("w.weights.h5" if ".weights.h5" in damage else "m.keras"), request)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not HDF5":
        path = tmp_path / "w.h5"
        path.write_bytes(b"this is not a weights file\n" * 100)
    else:
        path = tmp_path / "w.h5"
        with h5py.File(path, "w") as file:
            file["numbers"] = np.arange(3)
    expected = {"truncated .weights.h5": "not a readable HDF5 file", "truncated .keras": "not a readable .keras",
                "not HDF5": "not a readable HDF5 file", "HDF5 without weights": "holds no Keras weights"}[damage]
    model = lstm(0)
    with pytest.raises(WeightsFileError, match=expected) as error:
        load_weights_file(model, path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("source", ["other shapes", "one more layer"])
def test_files_of_another_architecture(tmp_path, name, source, request):
    written = lstm(1, hidden_size=12) if source == "other shapes" else bigger_lstm(1)
    path = write(written, tmp_path / name, request)
    model = lstm(0)
    before = model.get_weights()
    with pytest.raises(WeightsFileError, match="lstm_classifier") as error:
        load_weights_file(model, path)
    assert str(path) in str(error.value)
    for a, b in zip(before, model.get_weights()):  # a failed load leaves the model as it was
        np.testing.assert_array_equal(a, b)


def test_keras3_model_file_into_a_keras2_model(tmp_path, request):
    if KERAS >= 3:
        model = request.getfixturevalue("twin_lstm_classifier")()  # tf-keras, or skipped
        path = write(lstm(1), tmp_path / "m.keras", request)
    else:
        # Keras 2.14 cannot write a Keras 3 file: a Keras 2 one whose metadata names Keras 3 (all the check reads).
        model = lstm(0)
        original, path = write(lstm(1), tmp_path / "keras2.keras", request), tmp_path / "m.keras"
        with zipfile.ZipFile(original) as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                payload = source.read(item)
                if item.filename == "metadata.json":
                    payload = json.dumps({**json.loads(payload), "keras_version": "3.15.1"}).encode()
                target.writestr(item, payload)
    with pytest.raises(WeightsFileError, match=r"written by Keras 3\.[\d.]+; model 'lstm_classifier' is a Keras 2"
                                               r".*Keras 2 cannot read Keras 3 files") as error:
        load_weights_file(model, path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("name", ["w.keras2.h5", "w.weights.h5", "m.h5"])
def test_files_move_between_keras_2_and_3(tmp_path, name, twin_lstm_classifier, request):
    # Keras 3 writes, tf-keras reads, and the other way round (today's stack; skipped elsewhere).
    keras3_model, keras2_model = lstm(1), twin_lstm_classifier()
    if name != "w.keras2.h5":  # save_weights('x.h5') is a Keras 2 format only
        load_weights_file(keras2_model, write(keras3_model, tmp_path / f"3-{name}", request))
        assert_same_weights(keras3_model, keras2_model)
    keras2_model.set_weights([w + 1 for w in keras2_model.get_weights()])
    path = tmp_path / f"2-{name}"
    if name == "w.keras2.h5":
        keras2_model.save_weights(str(path))
    else:
        write(keras2_model, path, request)
    load_weights_file(keras3_model, path)
    assert_same_weights(keras2_model, keras3_model)
