"""The experiment functions against direct computations with keras_xai, plus resume behaviour."""
import numpy as np
import pytest

import keras_xai
from architectures.models import cifar_net
from sanity import csc, csc_experiment, csc_schedule, experiment_inputs, experiments, methods, metrics, randomization
from sanity.per_image import image_rng
from sanity.store import StoredResultsError

SPECS = methods.by_label(["Gradient", "GuidedBP", "LRP-z", "LRP-a1b0"])


@pytest.fixture(scope="module")
def model():
    net = keras_xai.model_wo_softmax(cifar_net(input_shape=(12, 12, 1)))
    rng = np.random.default_rng(0)
    net.set_weights([(0.2 * rng.standard_normal(w.shape)).astype("float32") for w in net.get_weights()])
    return net


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(1)
    return experiment_inputs.ExperimentInputs(rng.random((5, 12, 12, 1)), rng.integers(0, 10, 5),
                                              np.array([7, 3, 11, 20, 5]), (0.0, 1.0))


def direct_map(model, spec, x, cls):
    analyzer = keras_xai.create_analyzer(spec.analyzer, model, **spec.parameters((0.0, 1.0)))
    return metrics.reduce_channels(analyzer.analyze(x[None], neuron_selection=[cls]), spec.reduction)[0]


def test_random_logit_equals_direct_computation(model, inputs):
    result = experiments.random_logit(model, inputs, SPECS, seed=4, progress=False)
    assert result.ssim.shape == (5, len(SPECS))
    assert (result.random_class != result.true_class).all() and (result.random_class < 10).all()
    i, spec = 2, SPECS[2]
    a = direct_map(model, spec, inputs.images[i], inputs.labels[i])
    b = direct_map(model, spec, inputs.images[i], result.random_class[i])
    expected = metrics.ssim_flipped(a, b)
    assert result.ssim[i, 2] == pytest.approx(expected, abs=1e-6)


def test_random_class_is_uniform_over_the_others():
    rng = np.random.default_rng(0)
    draws = [experiments._random_other_class(rng, 3, 10) for _ in range(9000)]
    counts = np.bincount(draws, minlength=10)
    assert counts[3] == 0 and np.all(np.abs(np.delete(counts, 3) - 1000) < 150)


def test_cascading_equals_fresh_analyzers_on_randomized_copies(model, inputs):
    steps = ["fc6", "fc5", "conv3"]
    result = experiments.cascading_randomization(model, inputs, SPECS, steps, seed=2, progress=False)
    assert result.ssim.shape == (5, len(SPECS), len(steps))
    before = [w.copy() for w in model.get_weights()]
    i, m = 1, 1
    original = direct_map(model, SPECS[m], inputs.images[i], inputs.labels[i])
    for s, (step, copy) in enumerate(randomization.randomize_cascading(model, steps, seed=2)):
        randomized = direct_map(copy, SPECS[m], inputs.images[i], inputs.labels[i])
        assert result.ssim[i, m, s] == pytest.approx(metrics.ssim_flipped(original, randomized), abs=1e-6), step
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert result.examples["Gradient"].shape == (len(steps) + 1, 12, 12)


def test_csc_histograms_equal_direct_cosines(model, inputs):
    result = csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:2], ["fc5", "conv4"], n_vectors=3,
                                                          seed=9, progress=False)
    analyzer = keras_xai.create_analyzer("guided_backprop", model)
    expected_fine = 0
    for position, index in enumerate(inputs.indices):
        rng = image_rng(9, index)
        rng.standard_normal((3, 1024))  # the fc5 vectors come first
        vectors = rng.standard_normal((3, 6, 6, 128)).astype("float32")
        paths = analyzer.propagate_from(np.repeat(inputs.images[position:position + 1], 3, axis=0), "conv4", vectors)
        expected_fine = expected_fine + csc.histograms(csc.pairwise_abs_cosine(paths["conv2"][None]))[0]
    m, k, l = 1, 1, result.layers.index("conv2")
    np.testing.assert_array_equal(result.fine[m, k, l], expected_fine)
    summary = result.summary("GuidedBP", "conv4")
    assert "input" in summary and "fc5" not in summary
    assert result.channels["conv2"] == 64


def test_csc_statistics_shared_between_layers_with_one_relevance_tensor(model, inputs, monkeypatch):
    # LRP passes relevance through ReLUs: a conv layer and its ReLU report the same tensor, whose
    # statistics are computed once; every layer must still equal a direct computation.
    spec = methods.by_label(["LRP-z"])[0]
    result = csc_experiment.cosine_similarity_convergence(model, inputs, [spec], ["fc5"], n_vectors=3, seed=4,
                                                          progress=False)
    analyzer = keras_xai.create_analyzer(spec.analyzer, model, **spec.parameters((0.0, 1.0)))
    expected = {}
    for position, index in enumerate(inputs.indices):
        vectors = image_rng(4, index).standard_normal((3, 1024)).astype("float32")
        x = np.repeat(inputs.images[position:position + 1], 3, axis=0)
        for layer, paths in analyzer.propagate_from(x, "fc5", vectors).items():
            expected[layer] = expected.get(layer, 0) + csc.histograms(csc.pairwise_abs_cosine(paths[None]))[0]
    shared = [(a, b) for a, b in zip(result.layers, result.layers[1:]) if a.startswith("conv") and b.startswith("relu")]
    assert shared  # the model has conv -> ReLU pairs with equal relevance
    vectors = np.random.default_rng(0).standard_normal((len(inputs.indices) * 3, 1024)).astype("float32")
    paths = analyzer.propagate_from_layers(inputs.images, {"fc5": vectors}, copy=False)["fc5"]
    assert all(np.array_equal(paths[a], paths[b]) for a, b in shared)
    counted = []
    real = csc.pairwise_abs_cosine
    monkeypatch.setattr(csc, "pairwise_abs_cosine", lambda values: counted.append(1) or real(values))
    histograms = list(csc_experiment.injection_histograms(paths, len(inputs.indices), 3))
    arrays = list(paths.values())
    distinct = [a for i, a in enumerate(arrays) if not any(b.shape == a.shape and np.array_equal(a, b) for b in arrays[:i])]
    assert len(histograms) == len(paths) and len(counted) == len(distinct) <= len(paths) - len(shared) - 1  # + Dropout
    for layer, fine in expected.items():
        np.testing.assert_array_equal(result.fine[0, 0, result.layers.index(layer)], fine, err_msg=layer)


def test_csc_is_the_same_with_every_injection_in_its_own_call(model, inputs, monkeypatch):
    layers = ["fc6", "fc5", "conv4", "conv2"]
    together = csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[2:], layers, n_vectors=3, seed=5,
                                                            chunk_size=4, progress=False)
    assert csc_schedule.injection_groups(model, together.layers, layers, 12) == [layers]
    monkeypatch.setattr(csc_schedule, "INJECTION_GROUP_BYTES", 0)
    assert csc_schedule.injection_groups(model, together.layers, layers, 12) == [[name] for name in layers]
    alone = csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[2:], layers, n_vectors=3, seed=5,
                                                         chunk_size=4, progress=False)  # the same images per call
    np.testing.assert_array_equal(together.fine, alone.fine)
    np.testing.assert_array_equal(together.coarse, alone.coarse)


def test_csc_refuses_an_injection_layer_given_twice(model, inputs):
    with pytest.raises(ValueError, match=r"unique, \['fc5'\] appear"):
        csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:1], ["fc5", "conv3", "fc5"], progress=False)


def test_csc_statistics_errors_reach_the_caller(model, inputs, monkeypatch):
    def broken(paths):
        raise FloatingPointError("broken statistics")
    monkeypatch.setattr(csc, "pairwise_abs_cosine", broken)
    with pytest.raises(FloatingPointError, match="broken statistics"):
        csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:2], ["fc5"], n_vectors=2, progress=False)


def test_csc_errors_of_the_tracing_ahead_reach_the_caller(model, inputs, monkeypatch):
    calls = []

    def broken(self, x, relevances):  # the second method's trace, made while the first one runs
        calls.append(self)
        if len(calls) == 2:
            raise RuntimeError("broken trace")
    monkeypatch.setattr(keras_xai.analyzer.NativeAnalyzer, "prepare_propagate_from_layers", broken)
    with pytest.raises(RuntimeError, match="broken trace"):
        csc_experiment.cosine_similarity_convergence(model, inputs, SPECS[:2], ["fc5"], n_vectors=2, progress=False)
    assert len(calls) == 2


def test_csc_chunk_size_fits_the_results_budget(model, monkeypatch):
    layers = ["fc5", "conv4"]
    assert csc_schedule.csc_chunk_size(model, layers, 5) == 16  # the small net: capped
    assert csc_schedule.csc_chunk_size(model, layers, 5, most=3) == 3
    names = csc_schedule.layer_names(model)
    sizes = [csc_schedule._known_size(model, name) for name in names]
    per_image = 4 * 5 * sum(sum(sizes[:names.index(name) + 1]) for name in layers)
    monkeypatch.setattr(csc_schedule, "INJECTION_GROUP_BYTES", 3 * per_image + 1)
    assert csc_schedule.csc_chunk_size(model, layers, 5) == 3
    monkeypatch.setattr(csc_schedule, "INJECTION_GROUP_BYTES", per_image - 1)
    assert csc_schedule.csc_chunk_size(model, layers, 5) == 1  # never fewer than one image
    assert csc_schedule.csc_chunk_size(model, layers, 5, most=0) == 1


def test_a_layer_applied_twice_has_no_size_known_before_running():
    """Its outputs differ per application: the chunk size falls back to a quarter of the most."""
    from tensorflow import keras
    x = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="shared")
    net = keras.Model(x, keras.layers.Dense(3, name="logits")(shared(shared(x))))
    assert csc_schedule._known_size(net, "x") == 4 and csc_schedule._known_size(net, "logits") == 3
    assert csc_schedule._known_size(net, "shared") is None
    assert csc_schedule.csc_chunk_size(net, ["logits"], 5, most=16) == 4


def test_runs_resume_and_recompute_damaged_files(model, inputs, tmp_path):
    logged = []
    first = experiments.random_logit(model, inputs, SPECS[:2], seed=1, out=tmp_path, progress=False, log=logged.append)
    folder = tmp_path / "random_logit"
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 5 and not list(folder.glob("*.tmp"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:40])  # a torn write
    second = experiments.random_logit(model, inputs, SPECS[:2], seed=1, out=tmp_path, progress=False, log=logged.append)
    np.testing.assert_array_equal(first.ssim, second.ssim)
    assert any("unreadable" in message and files[1].name in message for message in logged)
    # Other settings do not reuse the files: refused, naming what differs (tests/sanity/test_store.py).
    with pytest.raises(StoredResultsError, match="seed: 1 -> 2"):
        experiments.random_logit(model, inputs, SPECS[:2], seed=2, out=tmp_path, progress=False, log=logged.append)


def test_two_classes(model, inputs):
    out = experiments.two_classes(model, inputs, 3, (1, 2), SPECS[:2])
    gradient = out["Gradient"]
    np.testing.assert_allclose(gradient["maps"][0], direct_map(model, SPECS[0], inputs.images[3], 1), rtol=1e-6)
    np.testing.assert_allclose(gradient["maps"][1], direct_map(model, SPECS[0], inputs.images[3], 2), rtol=1e-6)
    assert gradient["l1_min_max"] == pytest.approx(np.abs(gradient["difference"]).sum())
    with pytest.raises(ValueError, match="position 5 is outside the 5 images"):
        experiments.two_classes(model, inputs, 5, (1, 2), SPECS[:1])


def test_two_classes_with_patterns_fitted_on_the_training_images(model):
    """PatternNet in the two-classes figure uses the run's training images, and a fit made for
    another experiment of the run (the shared pattern cache) is reused, not repeated."""
    rng = np.random.default_rng(2)
    inputs = experiment_inputs.ExperimentInputs(rng.random((2, 12, 12, 1)), [0, 1], [4, 9], (0.0, 1.0),
                                                fit_images=rng.random((40, 12, 12, 1)).astype(np.float32))
    spec = methods.by_label(["PatternNet"])
    out = experiments.two_classes(model, inputs, 1, (0, 3), spec)
    assert len(inputs.pattern_cache) == 1  # fitted once, into the run's cache
    patterns = next(iter(inputs.pattern_cache.values()))
    analyzer = keras_xai.create_analyzer("pattern.net", model, patterns=patterns)
    expected = metrics.reduce_channels(analyzer.analyze(inputs.images[1:2], neuron_selection=[3]), "sum")[0]
    np.testing.assert_allclose(out["PatternNet"]["maps"][1], expected, rtol=1e-5, atol=1e-7)
    experiments.two_classes(model, inputs, 0, (0, 3), spec)
    assert len(inputs.pattern_cache) == 1


def test_inputs_validation():
    with pytest.raises(ValueError, match="unique"):
        experiment_inputs.ExperimentInputs(np.zeros((2, 4, 4, 1)), [0, 1], [3, 3], (0, 1))
