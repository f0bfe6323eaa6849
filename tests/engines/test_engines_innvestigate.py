"""engine="innvestigate" against the native engine and against iNNvestigate's published references.

Random-weight nets with non-zero biases (appendix-D CIFAR net, a VGG-style net, the native tests'
residual net with BatchNorm/Add/Concatenate, a ResNet-style net with projection shortcuts), inputs
in [-1, 1]. Criterion: max |native - innvestigate| / max |innvestigate| <= 1e-4.
"""
from pathlib import Path

import numpy as np
import pytest

import keras_xai
import native_test_models
from keras_xai.references import REFERENCE_METHODS, reference_cases, tolerance_for

from engine_test_models import images

TOLERANCE = 1e-4
#: How much two float32 computations of an ill-conditioned rule may differ in their error from the
#: float64 value: a near-zero denominator amplifies the rounding of its sum, which depends on the
#: summation order (graph-mode vs eager convolutions). Measured on the ResNet-style net, lrp.z_IB:
#: native float32 6.1e-4 from float64 at block1_relu1, innvestigate 2.9e-3 (4.8x); 2.4e-7 for both
#: one layer above, so it is rounding, not a different rule (with the bias, lrp.z: both <= 6.4e-6).
FLOAT32_SPREAD = 10
REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "innvestigate_refs" / "layer"

#: Parameters for the comparison (the same in both engines); SmoothGrad gets a seed (same noise).
PARAMS = {
    "integrated_gradients": {"steps": 8}, "smoothgrad": {"augment_by_n": 4, "noise_scale": 0.3, "seed": 7},
    "lrp.epsilon": {"epsilon": 0.01}, "lrp.alpha_beta": {"alpha": 3, "beta": 2},
    "deep_taylor.bounded": {"low": -1, "high": 1},
}
#: Every method both engines offer (read from the registry, so new native methods join), plus
#: variants of parameters that change the rules.
SHARED = sorted(info.name for info in keras_xai.list_analyzers() if {"native", "innvestigate"} <= set(info.engines))
METHODS = [(name, PARAMS.get(name, {})) for name in SHARED] + [
    ("lrp.z", {"input_layer_rule": (-1, 1)}), ("lrp.cmp", {"alpha": 2, "beta": 1})]
NETS = ("cifar", "vgg", "residual", "resnet_style")
#: A representative subset for the default run (iNNvestigate takes 5-20 s to build an analyzer
#: for the ResNet-style net on a loaded machine; the rest is in the slow run).
FAST = [(net, name, PARAMS.get(name, {})) for net, name in (
    ("cifar", "lrp.alpha_1_beta_0"), ("residual", "lrp.alpha_2_beta_1"), ("residual", "lrp.epsilon"),
    ("resnet_style", "lrp.z_plus"), ("vgg", "guided_backprop"), ("vgg", "rect_grad"),
)]


@pytest.fixture(scope="module")
def nets(cifar_logits, vgg_style, residual, resnet_style):
    return {
        "cifar": (cifar_logits, images(0)),
        "vgg": (vgg_style, images(1)),
        "residual": (residual, images(2, (4, 8, 8, 3))),
        "resnet_style": (resnet_style, images(3, (4, 16, 16, 3))),
    }


def relative_error(ours, reference) -> float:
    scale = np.abs(reference).max()
    assert scale > 0, "the reference is all zeros; the comparison would be void"
    return float(np.abs(ours - reference).max() / scale)


def _check(nets, net, method, params):
    """max |native - innvestigate| / max |innvestigate| <= 1e-4. Where float32 itself is not that
    precise (near-zero denominators of the ignore-bias and beta > 0 rules on the ResNet-style net),
    innvestigate is compared with the native engine in float64 instead, within FLOAT32_SPREAD times
    the native engine's own float32 error."""
    model, x = nets[net]
    native = keras_xai.create_analyzer(method, model, **params).analyze(x)
    theirs = keras_xai.create_analyzer(method, model, engine="innvestigate", **params).analyze(x)
    error = relative_error(native, theirs)
    if error <= TOLERANCE:
        return
    exact = keras_xai.create_analyzer(method, model, dtype="float64", **params).analyze(x)
    float32_noise = relative_error(native, exact)
    error_to_exact = relative_error(theirs, exact)
    assert error_to_exact <= max(TOLERANCE, FLOAT32_SPREAD * float32_noise), (
        f"{net} {method} {params}: max|native-innvestigate|/max|innvestigate| = {error:.2e}; against native "
        f"float64 {error_to_exact:.2e}, native float32's own error {float32_noise:.2e}")


@pytest.mark.parametrize("net,method,params", FAST, ids=[f"{n}-{m}" for n, m, _ in FAST])
def test_matches_native(nets, net, method, params):
    _check(nets, net, method, params)


@pytest.mark.slow
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("method,params", METHODS, ids=[f"{m}{p or ''}" for m, p in METHODS])
def test_matches_native_for_every_method(nets, net, method, params):
    _check(nets, net, method, params)


@pytest.mark.parametrize("method,params", [
    ("gradient", {"postprocess": "abs"}), ("input_t_gradient", {"postprocess": "square"}),
    ("integrated_gradients", {"steps": 4, "postprocess": "abs"}),
    ("smoothgrad", {"augment_by_n": 3, "noise_scale": 0.3, "seed": 2, "postprocess": "square"})])
def test_postprocess_matches_native(nets, method, params):
    """iNNvestigate's postprocess, per augmented copy and before the multiplication by the input."""
    _check(nets, "cifar", method, params)


def test_relevances_at_every_layer_match_native(nets):
    model, x = nets["residual"]
    selection = np.array([0, 1, 5, 7])
    native = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model).relevances(x, neuron_selection=selection)
    analyzer = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model, engine="innvestigate")
    theirs = analyzer.relevances(x, neuron_selection=selection)
    assert set(theirs) == {layer.name for layer in model.layers}
    np.testing.assert_array_equal(theirs["input"], analyzer.analyze(x, neuron_selection=selection))
    for name in sorted(set(native) & set(theirs)):
        assert relative_error(native[name], theirs[name]) <= TOLERANCE, name


def test_one_output_unit_per_sample(nets):
    model, x = nets["cifar"]
    analyzer = keras_xai.create_analyzer("lrp.z", model, engine="innvestigate")
    selection = np.array([3, 0, 9, 3])
    together = analyzer.analyze(x, neuron_selection=selection)
    for i, unit in enumerate(selection):
        alone = analyzer.analyze(x[i:i + 1], neuron_selection=int(unit))
        np.testing.assert_allclose(together[i:i + 1], alone, rtol=1e-5, atol=1e-6 * np.abs(alone).max())
    maximal = np.argmax(model(x).numpy(), axis=1)
    np.testing.assert_allclose(analyzer.analyze(x), analyzer.analyze(x, neuron_selection=maximal), rtol=1e-6)


@pytest.mark.parametrize("net,method,layer", [
    ("cifar", "gradient", "conv3"),
    ("residual", "lrp.alpha_1_beta_0", "add_relu"),
    pytest.param("resnet_style", "lrp.z", "block2_add", marks=pytest.mark.slow),
])
def test_propagate_from_matches_native(nets, net, method, layer):
    model, x = nets[net]
    shape = model.get_layer(layer).output.shape[1:]
    vectors = np.random.default_rng(11).normal(size=(len(x), *shape)).astype(np.float32)
    native = keras_xai.create_analyzer(method, model).propagate_from(x, layer, vectors)
    theirs = keras_xai.create_analyzer(method, model, engine="innvestigate").propagate_from(x, layer, vectors)
    np.testing.assert_allclose(theirs[layer], vectors, rtol=1e-6)
    assert set(theirs) <= set(native) | {layer}
    disagree = [n for n in theirs if n in native and relative_error(native[n], theirs[n]) > TOLERANCE]
    if disagree:
        # Random vectors meet near-zero denominators: judge against float64 as in _check, with the
        # native engine's float32 error over all layers as the scale of float32 rounding here.
        exact = keras_xai.create_analyzer(method, model, dtype="float64").propagate_from(x, layer, vectors)
        noise = max(relative_error(native[n], exact[n]) for n in theirs if n in native and n != layer)
        for name in disagree:
            assert relative_error(theirs[name], exact[name]) <= max(TOLERANCE, FLOAT32_SPREAD * noise), name


def test_propagate_from_gradient_is_the_vector_jacobian_product(nets):
    import tensorflow as tf
    model, x = nets["cifar"]
    vectors = np.random.default_rng(5).normal(size=(len(x), 1024)).astype(np.float32)
    theirs = keras_xai.create_analyzer("gradient", model, engine="innvestigate").propagate_from(x, "fc5", vectors)
    cut = tf.keras.Model(model.inputs, model.get_layer("fc5").output)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = cut(inputs)
    expected = tape.gradient(output, inputs, output_gradients=tf.constant(vectors)).numpy()
    assert relative_error(theirs["input"], expected) <= TOLERANCE


def test_propagate_from_layers_with_k_vectors_per_sample_matches_native(nets):
    model, x = nets["cifar"]
    rng = np.random.default_rng(12)
    injected = {"fc6": rng.normal(size=(3 * len(x), 10)).astype(np.float32),
                "conv4": rng.normal(size=(2 * len(x), *model.get_layer("conv4").output.shape[1:])).astype(np.float32)}
    native = keras_xai.create_analyzer("gradient", model).propagate_from_layers(x, injected)
    theirs = keras_xai.create_analyzer("gradient", model, engine="innvestigate").propagate_from_layers(x, injected)
    assert list(theirs) == ["fc6", "conv4"]
    for layer, vectors in injected.items():
        assert theirs[layer]["input"].shape == (len(vectors), *x.shape[1:])
        assert relative_error(native[layer]["input"], theirs[layer]["input"]) <= TOLERANCE, layer


def test_prepare_propagate_from_layers_of_a_worker_engine_only_checks_the_layers(nets):
    model, x = nets["cifar"]
    analyzer = keras_xai.create_analyzer("gradient", model, engine="innvestigate")
    assert analyzer.prepare_propagate_from_layers(x, {"fc6": np.zeros((len(x), 10), np.float32)}) is None
    with pytest.raises(ValueError, match="has no layer 'fc7'"):
        analyzer.prepare_propagate_from_layers(x, {"fc7": np.zeros((len(x), 10), np.float32)})


def _rect_grad_numpy(model, x, unit, percentile):
    """RectGrad on the native tests' dense net (fc1 with ReLU, fc2), in NumPy float64, as Kim et
    al.'s code computes it: tf.contrib's "nearest" percentile (values sorted high to low, the one at
    position round((n - 1)(1 - q / 100))), R_in = [a * R > tau] * R with no ReLU derivative."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    hidden = np.maximum(x.astype(np.float64) @ w1 + b1, 0)
    relevance = np.zeros((len(x), w2.shape[1]))
    relevance[:, unit] = 1.0
    at_hidden = relevance @ w2.T
    importance = hidden * at_hidden
    units = importance.shape[1]
    position = int(np.round((units - 1) * (1 - percentile / 100)))
    threshold = -np.sort(-importance, axis=1)[:, position:position + 1]
    masked = np.where(importance > threshold, at_hidden, 0.0)
    return masked @ w1.T, threshold


@pytest.mark.parametrize("percentile", [10, 50, 75, 98])
def test_rect_grad_matches_numpy(percentile):
    model = native_test_models.dense_net(seed=9)
    x = np.random.default_rng(2).normal(size=(6, 8)).astype(np.float32)
    analyzer = keras_xai.create_analyzer("rect_grad", model, engine="innvestigate", percentile=percentile)
    ours = analyzer.analyze(x, neuron_selection=1)
    expected, threshold = _rect_grad_numpy(model, x, 1, percentile)
    if percentile == 10:  # the case where the mask differs from mask x ReLU derivative
        assert (threshold < 0).any()
    # 6 hidden units: the 98th percentile is the maximum, and the strict ">" blocks everything.
    assert (np.abs(expected).max() > 0) == (percentile != 98)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_rect_grad_percentile_position():
    """The worker's percentile position is tf.contrib's "nearest" one (the native engine's too)."""
    from keras_xai.engines.innvestigate_rules import percentile_position
    from keras_xai.rect_grad import percentile_position as native_position
    for units in (1, 2, 6, 7, 25, 50, 51, 1000):
        for q in (0, 10, 25, 50, 75, 90, 98, 99.5, 100):
            expected = int(np.round((units - 1) * (1 - q / 100)))
            assert percentile_position(units, q) == expected == native_position(units, q), (units, q)


@pytest.mark.parametrize("build", [native_test_models.pooling_net, native_test_models.conv_net],
                         ids=["standalone_relus", "fused_relu"])
@pytest.mark.parametrize("percentile", [10, 50, 98])
def test_rect_grad_matches_native(build, percentile):
    """Standalone ReLUs (Activation and ReLU layers, max pooling) and a fused ReLU."""
    model = build(seed=4)
    x = images(13, (4, *model.inputs[0].shape[1:]))
    native = keras_xai.create_analyzer("rect_grad", model, percentile=percentile).analyze(x, neuron_selection=1)
    theirs = keras_xai.create_analyzer("rect_grad", model, engine="innvestigate",
                                       percentile=percentile).analyze(x, neuron_selection=1)
    assert relative_error(native, theirs) <= TOLERANCE, percentile


def test_smoothgrad_and_integrated_gradients_work_on_batchnorm_models(batchnorm):
    x = images(4, (3, 6, 6, 2))
    for method, params in (("smoothgrad", {"augment_by_n": 5, "noise_scale": 0.2, "seed": 1}),
                           ("integrated_gradients", {"steps": 6})):
        native = keras_xai.create_analyzer(method, batchnorm, **params).analyze(x, neuron_selection=2)
        theirs = keras_xai.create_analyzer(method, batchnorm, engine="innvestigate", **params).analyze(
            x, neuron_selection=2)
        assert relative_error(native, theirs) <= TOLERANCE, method


def _reference_files(names=None):
    files = sorted(REFERENCE_DIR.glob("*.hdf5"))
    return [f for f in files if names is None or f.stem in names]


def _check_reference_file(path):
    method, params = REFERENCE_METHODS[path.stem]
    tolerance = tolerance_for(path.stem)
    checked = 0
    for group, model, x, output, attribution in reference_cases(path):
        analyzer = keras_xai.create_analyzer(method, model, engine="innvestigate", **params)
        ours = analyzer.analyze(x.astype(np.float32))
        assert np.allclose(ours, attribution, **tolerance), (
            f"{path.stem}/{group}: max abs error {np.abs(ours - attribution).max():.3e}")
        checked += 1
    assert checked == 6


@pytest.mark.parametrize("path", _reference_files({"LRPAlpha2Beta1", "Gradient", "BoundedDeepTaylor"}),
                         ids=lambda p: p.stem)
def test_published_references_subset(path):
    _check_reference_file(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", _reference_files(), ids=lambda p: p.stem)
def test_published_references(path):
    _check_reference_file(path)


@pytest.mark.slow
def test_upstream_add_rule_differs_from_the_residual_rules(nets):
    """residual_rules=False keeps iNNvestigate's z-rule on Add (and its BatchNorm fusion): on a
    residual net with alpha-beta the two treatments must give different maps."""
    model, x = nets["residual"]
    ours = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model, engine="innvestigate").analyze(x)
    upstream = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model, engine="innvestigate",
                                         residual_rules=False).analyze(x)
    assert relative_error(ours, upstream) > 1e-2


def test_analyzers_without_a_backward_pass():
    model = native_test_models.conv_net(seed=6)
    x = images(12, (3, 8, 8, 3))
    np.testing.assert_array_equal(keras_xai.create_analyzer("input", model, engine="innvestigate").analyze(x), x)
    baseline = keras_xai.create_analyzer("gradient.baseline", model, engine="innvestigate").analyze(x, neuron_selection=2)
    native = keras_xai.create_analyzer("gradient", model).analyze(x, neuron_selection=2)
    assert relative_error(native, baseline) <= TOLERANCE
    noise = keras_xai.create_analyzer("random", model, engine="innvestigate", stddev=0.5)
    assert noise.analyze(x).shape == x.shape
    with pytest.raises(ValueError, match="analyze\\(\\) only"):
        noise.relevances(x)
