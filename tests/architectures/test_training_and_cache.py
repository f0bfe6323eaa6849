import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from tensorflow import keras

from architectures import cache, data, models, training, zoo


@pytest.fixture(scope="module")
def mnist():
    return data.mnist()


def test_short_training_beats_chance_widely(mnist):
    recipe = training.get_recipe("lstm_classifier", "thesis").with_epochs(1)
    x = training.rows_sequence(mnist.train.images[:12000])
    keras.utils.set_random_seed(0)  # initial weights come from the global generator: not from earlier tests
    model = models.lstm_classifier()
    training.fit(model, x, mnist.train.labels[:12000], recipe, seed=0, from_logits=True, verbose=0)
    accuracy = training.accuracy(model, training.rows_sequence(mnist.test.images[:2000]), mnist.test.labels[:2000])
    assert accuracy > 0.6, accuracy  # chance is 0.1


def test_cifar_net_short_training_on_mnist(mnist):
    recipe = training.get_recipe("cifar_net", "mnist")
    keras.utils.set_random_seed(0)
    model = models.cifar_net(input_shape=(28, 28, 1))
    training.fit(model, training.images_to_float(mnist.train.images[:1500]), mnist.train.labels[:1500], recipe,
                 seed=0, verbose=0)
    accuracy = training.accuracy(model, training.images_to_float(mnist.test.images[:1000]), mnist.test.labels[:1000])
    assert accuracy > 0.7, accuracy


def test_recipes_and_keys():
    thesis = training.get_recipe("lstm_classifier", "thesis")
    assert (thesis.learning_rate, thesis.batch_size, thesis.epochs, thesis.adam_epsilon) == (0.01, 100, 2, 1e-8)
    paper = training.get_recipe("cifar_net", dataset="cifar10")
    assert (paper.batch_size, paper.epochs, paper.shift, paper.horizontal_flip) == (32, 100, 0.1, True)
    assert training.get_recipe("cifar_net", dataset="mnist").horizontal_flip is False
    assert thesis.key() != thesis.with_epochs(3).key() and thesis.key() == thesis.with_epochs(2).key()
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        training.get_recipe("lstm_classifier", "fast")
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):  # it would cache an untrained model
        thesis.with_epochs(0)


def small_model():
    model = models.lstm_classifier()
    model.build((None, 28, 28))
    return model


def test_cache_round_trip(private_cache):
    model = small_model()
    path = cache.entry_path("lstm_classifier", "mnist", "thesis", "abc", 3)
    assert str(path).startswith(str(private_cache))
    cache.save(model, path, {"test_accuracy": 0.5})
    fresh = small_model()
    metadata = cache.load(fresh, path)
    assert metadata["test_accuracy"] == 0.5 and len(metadata["sha256"]) == 64
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in path.parent.iterdir()] and not [p for p in path.parent.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_sidecar", "bad_json"])
def test_corrupt_cache_is_detected_and_removed(private_cache, damage):
    model = small_model()
    path = cache.entry_path("lstm_classifier", "mnist", "thesis", "abc", 0)
    cache.save(model, path, {"test_accuracy": 0.5})
    sidecar = path.with_name(path.name + ".json")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip_byte":
        path.write_bytes(raw[:-100] + bytes([raw[-100] ^ 0xFF]) + raw[-99:])
    elif damage == "no_sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("{not json")
    with pytest.warns(cache.CorruptCacheWarning, match="will be retrained"):
        assert cache.load(small_model(), path) is None
    assert not path.exists() and not sidecar.exists()


def test_cache_refuses_weights_of_another_architecture(private_cache):
    path = cache.entry_path("lstm_classifier", "mnist", "thesis", "abc", 0)
    cache.save(small_model(), path, {"test_accuracy": 0.5})
    with pytest.warns(cache.CorruptCacheWarning, match="another architecture: layer 0 .'lstm1'. has weights of shapes"):
        assert cache.load(models.lstm_classifier(hidden_size=12), path) is None
    assert not path.exists()


def test_cache_files_are_keras_independent(private_cache, twin_lstm_classifier):
    # Written by tf-keras (Keras 2), read by Keras 3, and back: what switching stacks does to the cache.
    keras2_model, keras3_model = twin_lstm_classifier(), small_model()
    path = cache.entry_path("lstm_classifier", "mnist", "thesis", "abc", 1)
    cache.save(keras2_model, path, {"test_accuracy": 0.25})
    assert cache.load(keras3_model, path)["test_accuracy"] == 0.25
    for a, b in zip(keras2_model.get_weights(), keras3_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    keras3_model.set_weights([w * 2 for w in keras3_model.get_weights()])
    cache.save(keras3_model, path, {"test_accuracy": 0.75})
    assert cache.load(keras2_model, path)["test_accuracy"] == 0.75
    for a, b in zip(keras3_model.get_weights(), keras2_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_entries_of_earlier_versions_are_converted(private_cache):
    # Earlier versions stored Keras' own .weights.h5 file next to the same JSON sidecar.
    model = small_model()
    path = cache.entry_path("lstm_classifier", "mnist", "thesis", "abc", 2)
    legacy = path.with_name(path.name.replace(cache.SUFFIX, ".weights.h5"))
    legacy.parent.mkdir(parents=True)
    model.save_weights(str(legacy))
    sidecar = legacy.with_name(legacy.name + ".json")
    sidecar.write_text(json.dumps({"test_accuracy": 0.5, "sha256": cache.file_sha256(legacy)}))
    fresh = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CorruptCacheWarning)
        assert cache.load(fresh, path)["test_accuracy"] == 0.5
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert path.exists() and not legacy.exists() and not sidecar.exists()
    assert cache.load(small_model(), path)["test_accuracy"] == 0.5


def test_trained_model_caches_and_reloads(private_cache):
    first = zoo.trained_model("lstm_classifier", recipe="thesis", epochs=1, seed=5, verbose=0)
    assert first.metadata["source"] == "trained" and first.test_accuracy > 0.8
    assert first.metadata["recipe"]["epochs"] == 1 and len(first.metadata["history"]["loss"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CorruptCacheWarning)
        second = zoo.trained_model("lstm_classifier", recipe="thesis", epochs=1, seed=5, verbose=0)
    assert second.metadata["source"].endswith(cache.SUFFIX) and second.test_accuracy == first.test_accuracy
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A damaged entry is retrained, not used.
    path = cache.entry_path("lstm_classifier", "mnist", "thesis",
                            training.get_recipe("lstm_classifier", "thesis").with_epochs(1).key(), 5)
    path.write_bytes(b"garbage")
    with pytest.warns(cache.CorruptCacheWarning):
        third = zoo.trained_model("lstm_classifier", recipe="thesis", epochs=1, seed=5, verbose=0)
    assert third.metadata["source"] == "trained"


def test_trained_model_rejects_unknown_combinations():
    with pytest.raises(ValueError, match="cannot be trained on 'cifar10'"):
        zoo.trained_model("lstm_classifier", "cifar10")


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "architectures", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_help_and_recipes():
    result = run_cli("train", "--help")
    assert result.returncode == 0 and "--epochs" in result.stdout and "--seed" in result.stdout
    result = run_cli("recipes")
    assert "97.23%" in result.stdout and "80.89%" in result.stdout


def test_cli_train_reports_accuracy_then_loads(private_cache, monkeypatch):
    import os

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    first = run_cli("train", "lstm_classifier", "--recipe", "thesis", "--epochs", "1", "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout[first.stdout.index("{"):])
    assert summary["source"] == "trained" and summary["test_accuracy"] > 0.8
    second = run_cli("train", "lstm_classifier", "--recipe", "thesis", "--epochs", "1", "--quiet", env=env)
    again = json.loads(second.stdout[second.stdout.index("{"):])
    assert again["source"].endswith(cache.SUFFIX) and again["test_accuracy"] == summary["test_accuracy"]


def test_cli_missing_cifar_folder(tmp_path):
    result = run_cli("train", "cifar_net", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--quiet")
    assert result.returncode == 2 and f"--data-dir: {tmp_path / 'none'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_final_learning_rate_phase():
    recipe = training.get_recipe("lstm_classifier", "default")
    assert (recipe.epochs, recipe.final_learning_rate, recipe.final_epochs) == (6, 0.001, 1)
    schedule = training.learning_rate(recipe, steps_per_epoch=600)
    assert float(schedule(5 * 600 - 1)) == pytest.approx(0.01)
    assert float(schedule(5 * 600 + 1)) == pytest.approx(0.001)
    assert training.learning_rate(training.get_recipe("lstm_classifier", "thesis"), 600) == 0.01


def test_recipe_keys_are_stable():
    # Cached weights are found by these keys: a change here silently retrains everyone's models.
    assert training.get_recipe("lstm_classifier", "thesis").key() == "5b022245a2"
