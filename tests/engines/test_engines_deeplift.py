"""engine="deeplift": summation-to-delta, a NumPy DeepLIFT on a dense net (Rescale, RevealCancel and
the ablation with decoupled W+ / W- chains), deeplift's own code path, injection, the converters
ResNet-50 needs, and agreement with the native engine for every DeepLIFT method both engines have.

Summation-to-delta is checked against the exact ``f(x) - f(reference)`` (the model in float64), with
the error measured relative to the magnitude of what float32 adds up to get the checked sum
(see :func:`assert_conserves`).
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_xai
import native_test_models

from engine_test_models import float64_copy, images
from numpy_deeplift import input_contributions

TOLERANCE = 1e-4
#: Summation-to-delta tolerance, relative to the float32 scale of the sum (measured errors: 1e-8 to
#: 2e-7 on the ResNet-style net, up to 8e-7 on the appendix-D net).
CONSERVATION = 1e-5


def _delta(model, x, reference, unit):
    """Exact f(x) - f(reference) for one output unit (the model in float64)."""
    exact = float64_copy(model)
    reference = np.broadcast_to(reference, x.shape)
    return exact(x.astype(np.float64)).numpy()[:, unit] - exact(reference.astype(np.float64)).numpy()[:, unit]


def _sums(values):
    return values.reshape(len(values), -1).sum(axis=1, dtype=np.float64)


def _magnitudes(values):
    return np.abs(values).reshape(len(values), -1).sum(axis=1, dtype=np.float64)


def assert_conserves(contributions, total, scale=None, what=""):
    """sum(contributions) == total within CONSERVATION x ``scale`` per sample.

    ``scale`` is the sum of the magnitudes float32 accumulated to produce the contributions (the
    size of its rounding errors when terms cancel); by default the sum of |contributions|.
    """
    scale = _magnitudes(contributions) if scale is None else scale
    error = np.abs(_sums(contributions) - total)
    assert (error <= CONSERVATION * scale).all(), (
        f"{what}: |sum - total| = {error}, float32 scale = {scale}, relative {error / scale}")


@pytest.mark.parametrize("method,reference", [("deep_lift.rescale", "zero"), ("deep_lift.reveal_cancel", "random")])
def test_summation_to_delta_on_a_residual_net_with_batchnorm(resnet_style, method, reference):
    x = images(0, (4, 16, 16, 3))
    reference = 0.0 if reference == "zero" else images(1, (1, 16, 16, 3), -0.2, 0.2)[0]
    analyzer = keras_xai.create_analyzer(method, resnet_style, engine="deeplift", reference=reference)
    contributions = analyzer.analyze(x, neuron_selection=2)
    assert_conserves(contributions, _delta(resnet_style, x, reference, 2), what=method)


def test_summation_to_delta_on_the_appendix_d_net(cifar_logits):
    """Every layer conserves the contributions except max pooling, whose gradient rule (deeplift's
    only one) does not when the reference activations differ within a pooling window (they do at
    the borders of 'same' convolutions); above the last pooling the sum is the logit difference.

    The output layer's contributions are deeplift's own logit difference (one-hot multipliers), so
    their float32 scale is that of the logits' dot products, sum_j |w_j| (|h_j(x)| + |h_j(x0)|)
    over relu5's outputs h: about 25 here, while |delta| is 0.1-1.7 (deeplift's logit differences
    are 1e-7 of that scale from the exact ones; relative to |delta| up to 1.2e-5 were measured
    over three seeds)."""
    x = images(2, (4, 32, 32, 3))
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", cifar_logits, engine="deeplift")
    relevances = analyzer.contributions(x, neuron_selection=4)
    delta = _delta(cifar_logits, x, 0.0, 4)
    hidden = tf.keras.Model(cifar_logits.inputs, cifar_logits.get_layer("relu5").output)
    weights = np.abs(cifar_logits.get_layer("fc6").get_weights()[0][:, 4]).astype(np.float64)
    logit_scale = (np.abs(hidden(x).numpy()) + np.abs(hidden(np.zeros_like(x)).numpy())) @ weights
    assert_conserves(relevances["fc6"], delta, logit_scale, what="fc6")
    for name in ("relu5", "fc5", "flatten", "pool4"):
        assert_conserves(relevances[name], delta, what=name)
    order = ["input", "conv1", "relu1", "conv2", "relu2"], ["pool2", "conv3", "relu3", "conv4", "relu4"]
    for group in order:
        for lower, upper in zip(group, group[1:]):
            assert_conserves(relevances[lower], _sums(relevances[upper]), what=f"{lower} vs {upper}")
    np.testing.assert_array_equal(relevances["input"], analyzer.analyze(x, neuron_selection=4))


@pytest.mark.parametrize("method,mode,ablation", [
    ("deep_lift.rescale", "rescale", False),
    ("deep_lift.reveal_cancel", "reveal_cancel", False),
    ("deep_lift.ablation", "reveal_cancel", True),
])
def test_matches_a_numpy_deeplift_on_a_dense_net(method, mode, ablation):
    model = native_test_models.dense_net(seed=8, bias_scale=0.5)
    x = np.random.default_rng(3).normal(size=(7, 8)).astype(np.float32)
    reference = np.random.default_rng(4).normal(scale=0.3, size=(8,)).astype(np.float32)
    ours = keras_xai.create_analyzer(method, model, engine="deeplift", reference=reference).analyze(
        x, neuron_selection=3)
    expected = input_contributions(model, x, np.broadcast_to(reference, x.shape), 3, mode, ablation)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_ablation_rescale_mode_matches_numpy():
    model = native_test_models.dense_net(seed=8, bias_scale=0.5)
    x = np.random.default_rng(3).normal(size=(7, 8)).astype(np.float32)
    ours = keras_xai.create_analyzer("deep_lift.ablation", model, engine="deeplift",
                                     nonlinear_mode="rescale").analyze(x, neuron_selection=0)
    expected = input_contributions(model, x, np.zeros_like(x), 0, "rescale", ablation=True)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_ablation_decouples_the_positive_and_negative_chains():
    """The ablation on Dense(relu) -> Dense with the Rescale rule (whose scale factor s is the same
    for both multipliers): m+ = W1+ diag(s) W2+ e_k (the W+ chain), m- = W1- diag(s) W2- e_k (the W-
    chain), for every input whatever the sign of its difference, and the contributions are
    m+ dx+ + m- dx-. Inputs and weights have both signs, so the earlier reading (nothing for inputs
    below their reference, W-^T m- added to the positive multiplier) would differ."""
    unit = 1
    model = native_test_models.dense_net(seed=5, bias_scale=0.5)
    x = np.random.default_rng(11).normal(size=(6, 8)).astype(np.float32)
    reference = np.random.default_rng(12).normal(scale=0.5, size=(8,)).astype(np.float32)
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    dx = x.astype(np.float64) - reference.astype(np.float64)
    assert ((dx > 0).any(axis=1) & (dx < 0).any(axis=1)).all()
    assert (w1 > 0).any() and (w1 < 0).any() and (w2[:, unit] > 0).any() and (w2[:, unit] < 0).any()
    z, z_ref = x.astype(np.float64) @ w1 + b1, reference.astype(np.float64) @ w1 + b1
    assert (np.abs(z - z_ref) > 1e-3).all()  # no near-zero special case of the Rescale rule
    s = (np.maximum(z, 0) - np.maximum(z_ref, 0)) / (z - z_ref)
    m_pos = (s * np.maximum(w2[:, unit], 0)) @ np.maximum(w1, 0).T
    m_neg = (s * np.minimum(w2[:, unit], 0)) @ np.minimum(w1, 0).T
    expected = m_pos * np.maximum(dx, 0) + m_neg * np.minimum(dx, 0)
    assert np.abs(m_neg * np.minimum(dx, 0)).max() > 0.1 * np.abs(expected).max()  # the W- chain matters
    np.testing.assert_allclose(input_contributions(model, x, np.broadcast_to(reference, x.shape), unit,
                                                     "rescale", ablation=True), expected, rtol=1e-12, atol=1e-12)
    ours = keras_xai.create_analyzer("deep_lift.ablation", model, engine="deeplift", reference=reference,
                                     nonlinear_mode="rescale").analyze(x, neuron_selection=unit)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_equals_deeplifts_own_function(resnet_style):
    """Our in-graph neuron selection against deeplift's get_target_contribs_func, which runs with
    the update_task_vector speed fix: later calls add no operations to the graph (the stock
    version adds some at every call, which made a batch cost seconds)."""
    x = images(5, (3, 16, 16, 3))
    analyzer = keras_xai.create_analyzer("deep_lift.reveal_cancel", resnet_style, engine="deeplift")
    sizes = []
    for unit in (1, 3, 1):
        ours = analyzer.analyze(x, neuron_selection=unit)
        reply, arrays = analyzer._call({"op": "package_contributions", "task_index": unit}, {"x": x})
        np.testing.assert_allclose(arrays["analysis"], ours, rtol=1e-6, atol=1e-7 * np.abs(ours).max())
        sizes.append(reply["graph_operations"])
    assert sizes[1] == sizes[2], sizes


def test_per_sample_selection_and_maximal_unit(resnet_style):
    x = images(6, (3, 16, 16, 3))
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", resnet_style, engine="deeplift")
    selection = np.array([4, 0, 2])
    together = analyzer.analyze(x, neuron_selection=selection)
    for i, unit in enumerate(selection):
        np.testing.assert_allclose(together[i], analyzer.analyze(x[i:i + 1], neuron_selection=int(unit))[0],
                                   rtol=1e-5, atol=1e-6)
    maximal = np.argmax(resnet_style(x).numpy(), axis=1)
    np.testing.assert_allclose(analyzer.analyze(x), analyzer.analyze(x, neuron_selection=maximal), rtol=1e-6)


def _difference(model, layer, x):
    """a - a_ref at ``layer``'s output (zero reference)."""
    cut = tf.keras.Model(model.inputs, model.get_layer(layer).output)
    return cut(x).numpy() - cut(np.zeros_like(x)).numpy()


@pytest.mark.parametrize("method", ["deep_lift.rescale", "deep_lift.reveal_cancel", "deep_lift.ablation"])
def test_propagate_from_sets_both_multipliers(resnet_style, method):
    """Injected at a layer, the multipliers there are the vector and the contributions v * (a - a_ref);
    with Rescale the contributions below sum to the same total (no max pooling in this net)."""
    x = images(7, (2, 16, 16, 3))
    layer = "block2_relu1"
    difference = _difference(resnet_style, layer, x)
    vectors = np.random.default_rng(1).normal(size=difference.shape).astype(np.float32)
    analyzer = keras_xai.create_analyzer(method, resnet_style, engine="deeplift")
    paths = analyzer.propagate_contributions(x, layer, vectors)
    np.testing.assert_allclose(paths[layer], vectors * difference, rtol=1e-5, atol=1e-6)
    assert "logits" not in paths and "block2_add" not in paths and "input" in paths
    if method == "deep_lift.rescale":
        assert_conserves(paths["input"], _sums(vectors * difference), what="from block2_relu1")
    multipliers = analyzer.propagate_from(x, layer, vectors)
    assert set(multipliers) == set(paths)
    np.testing.assert_array_equal(multipliers[layer], vectors)
    np.testing.assert_array_equal(multipliers["input"], paths["input"])  # the input's entry: contributions
    # The flattened vector is accepted too.
    flat = analyzer.propagate_from(x, layer, vectors.reshape(len(x), -1))
    np.testing.assert_array_equal(flat["input"], multipliers["input"])


def test_rescale_contributions_are_multipliers_times_differences(resnet_style):
    """With Rescale the positive and negative multipliers are equal everywhere, so at every layer
    contributions = multiplier x (a - a_ref); the output's multiplier is the one-hot start."""
    x = images(12, (2, 16, 16, 3))
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", resnet_style, engine="deeplift")
    multipliers = analyzer.relevances(x, neuron_selection=2)
    contributions = analyzer.contributions(x, neuron_selection=2)
    assert set(multipliers) == set(contributions)
    np.testing.assert_array_equal(multipliers["logits"], np.eye(5, dtype=np.float32)[[2, 2]])
    np.testing.assert_array_equal(multipliers["input"], analyzer.analyze(x, neuron_selection=2))
    for name in ("block1_relu1", "block1_add", "block2_out", "gap"):
        expected = multipliers[name] * _difference(resnet_style, name, x)
        scale = np.abs(contributions[name]).max()
        assert scale > 0 and np.abs(contributions[name] - expected).max() <= 1e-5 * scale, name


#: DeepLIFT methods both engines offer (the native ones register on import; none: nothing to compare).
SHARED = sorted(info.name for info in keras_xai.list_analyzers() if {"native", "deeplift"} <= set(info.engines))
#: The default run compares every shared method on the ResNet-style net and one on the VGG-style net
#: (the appendix-D net's conversion alone takes 5-10 s: it is in the slow run).
FAST = {("resnet_style", name) for name in SHARED} | {("vgg", "deep_lift.ablation")}
CASES = [pytest.param(net, name, marks=() if (net, name) in FAST else pytest.mark.slow, id=f"{net}-{name}")
         for net in ("cifar", "vgg", "resnet_style") for name in SHARED]


@pytest.fixture(scope="module")
def nets(cifar_logits, vgg_style, resnet_style):
    return {"cifar": (cifar_logits, images(8)), "vgg": (vgg_style, images(9)),
            "resnet_style": (resnet_style, images(10, (4, 16, 16, 3)))}


def _check_agreement(model, x, method, **params):
    """max |native - deeplift| / max |deeplift| <= 1e-4 (measured: 2e-7 to 1e-6)."""
    native = keras_xai.create_analyzer(method, model, **params).analyze(x)
    theirs = keras_xai.create_analyzer(method, model, engine="deeplift", **params).analyze(x)
    error = np.abs(native - theirs).max() / np.abs(theirs).max()
    assert error <= TOLERANCE, f"{model.name} {method} {params}: {error:.2e}"


@pytest.mark.parametrize("net,method", CASES)
def test_agrees_with_native(nets, net, method):
    _check_agreement(*nets[net], method)


@pytest.mark.skipif("deep_lift.rescale" not in SHARED, reason="the native engine has no deep_lift.rescale")
def test_agrees_with_native_for_a_reference_per_sample(nets):
    model, x = nets["resnet_style"]
    _check_agreement(model, x, "deep_lift.rescale", reference=images(11, x.shape, -0.3, 0.3))


def test_contributions_at_every_layer_agree_with_native(nets):
    """The contributions at every layer's output (engine: ``relevances``) against the native
    analyzer's ``contributions``, on the ResNet-style net."""
    model, x = nets["resnet_style"]
    native = keras_xai.create_analyzer("deep_lift.reveal_cancel", model)
    if not hasattr(native, "contributions"):
        pytest.skip("the native engine has no DeepLIFT contributions")
    theirs = keras_xai.create_analyzer("deep_lift.reveal_cancel", model, engine="deeplift")
    expected = native.contributions(x, neuron_selection=1)
    got = theirs.contributions(x, neuron_selection=1)
    assert set(got) <= set(expected) and "block2_add" in got and "input" in got
    for name, values in got.items():
        error = np.abs(values - expected[name]).max() / max(np.abs(values).max(), 1e-30)
        assert error <= TOLERANCE, f"{name}: {error:.2e}"


@pytest.mark.slow
def test_resnet50_converts_and_conserves_above_the_max_pooling():
    """ResNet-50 (random weights) converts: ZeroPadding2D, Add, GlobalAveragePooling2D, BatchNorm."""
    from architectures.models import resnet50
    model = keras_xai.model_wo_softmax(resnet50(weights=None))
    x = images(9, (2, 224, 224, 3), -100, 100)
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, engine="deeplift")
    relevances = analyzer.contributions(x, neuron_selection=7)
    delta = _delta(model, x, 0.0, 7)
    assert_conserves(relevances["avg_pool"], delta, what="avg_pool")
    assert all(np.isfinite(v).all() for v in relevances.values())
    assert relevances["input_1" if "input_1" in relevances else model.layers[0].name].shape == x.shape


def test_injecting_a_one_hot_vector_at_the_output_is_analyze(resnet_style):
    x = images(10, (2, 16, 16, 3))
    analyzer = keras_xai.create_analyzer("deep_lift.reveal_cancel", resnet_style, engine="deeplift")
    one_hot = np.zeros((2, 5), np.float32)
    one_hot[:, 3] = 1
    paths = analyzer.propagate_from(x, "logits", one_hot)
    np.testing.assert_allclose(paths["input"], analyzer.analyze(x, neuron_selection=3), rtol=1e-6, atol=1e-8)
    assert list(paths)[0] == "input" and list(paths)[-1] == "logits"


@pytest.mark.parametrize("method", SHARED)
def test_multipliers_agree_with_native(nets, method):
    """relevances and propagate_from report multipliers in both engines (the input's entry: its
    contributions); every layer within 1e-4 of its largest value, on the ResNet-style net."""
    model, x = nets["resnet_style"]
    native = keras_xai.create_analyzer(method, model)
    theirs = keras_xai.create_analyzer(method, model, engine="deeplift")
    layer = "block2_relu1"
    vectors = np.random.default_rng(3).normal(size=(len(x), *model.get_layer(layer).output.shape[1:]))
    vectors = vectors.astype(np.float32)
    for what, expected, got in (
            ("relevances", native.relevances(x, neuron_selection=3), theirs.relevances(x, neuron_selection=3)),
            ("propagate_from", native.propagate_from(x, layer, vectors), theirs.propagate_from(x, layer, vectors))):
        assert set(got) <= set(expected) and "input" in got and len(got) > 5, (what, sorted(got))
        for name, values in got.items():
            scale = np.abs(values).max()
            assert scale > 0, (what, name)
            error = np.abs(values - expected[name]).max() / scale
            assert error <= TOLERANCE, f"{what} {name}: {error:.2e}"


@pytest.mark.parametrize("reference", ["shared", "per sample"])
def test_k_vectors_per_sample_agree_with_native(nets, reference):
    """Two vectors per sample: the worker repeats the samples (or, with a reference per sample,
    sends one request per vector slot) and agrees with the native engine row for row."""
    model, x = nets["resnet_style"]
    params = {"reference": images(12, x.shape, -0.3, 0.3)} if reference == "per sample" else {}
    layer = "block2_relu1"
    vectors = np.random.default_rng(3).normal(size=(2 * len(x), *model.get_layer(layer).output.shape[1:]))
    native = keras_xai.create_analyzer("deep_lift.reveal_cancel", model, **params).propagate_from(x, layer, vectors)
    theirs = keras_xai.create_analyzer("deep_lift.reveal_cancel", model, engine="deeplift",
                                       **params).propagate_from(x, layer, vectors)
    assert theirs["input"].shape == (2 * len(x), *x.shape[1:])
    for name in ("input", layer):
        error = np.abs(theirs[name] - native[name]).max() / np.abs(native[name]).max()
        assert error <= TOLERANCE, f"{name}: {error:.2e}"
