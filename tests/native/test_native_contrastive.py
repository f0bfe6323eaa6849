"""Excitation Backprop, contrastive Excitation Backprop (paper eq. 16) and contrastive LRP
(paper eq. 15) in the native engine: against NumPy float64 versions of the equations on small
dense and conv nets, conservation, the two ways of computing contrastive EB, class sensitivity
on the appendix-D CIFAR net, and errors.
"""
import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from keras_xai.canonize import UnsupportedLayerError
from native_test_models import TINY_MODELS, randomize
from test_native_rect_grad import forward, linear_layers, small_conv, small_dense

L = keras.layers
SEEDS = (0, 1, 2)
BUILDS = pytest.mark.parametrize("build", [small_dense, small_conv], ids=["dense", "conv"])


# --- NumPy float64 versions of the equations ---------------------------------------------------

def z_plus_step(x, matrix, relevance, negate=False):
    """Eq. 5 on one layer: R_i = sum_j [x_i w_ij]^+ / sum_i' [x_i' w_i'j]^+ R_j (``negate``:
    the same with -W, i.e. N+)."""
    contributions = x[:, :, None] * (-matrix if negate else matrix)[None]
    positive = np.maximum(contributions, 0)
    totals = positive.sum(axis=1, keepdims=True)
    shares = np.divide(positive, totals, out=np.zeros_like(positive), where=totals != 0)
    return (shares * relevance[:, None, :]).sum(axis=2)


def z_plus_numpy(model, x, start, final="z_plus") -> np.ndarray:
    """The z+ rule on every layer from the vector ``start`` at the logits; the final layer uses
    Z+ ("z_plus"), Z+ - N+ ("contrastive", eq. 16) or N+ ("negated")."""
    layers = linear_layers(model)
    values = forward(layers, x)
    relevance = start
    for position in range(len(layers) - 1, -1, -1):
        x_in, matrix = values[position], layers[position][0]
        if position == len(layers) - 1 and final == "contrastive":
            relevance = z_plus_step(x_in, matrix, relevance) - z_plus_step(x_in, matrix, relevance, negate=True)
        elif position == len(layers) - 1 and final == "negated":
            relevance = z_plus_step(x_in, matrix, relevance, negate=True)
        else:
            relevance = z_plus_step(x_in, matrix, relevance)
    return relevance.reshape(x.shape)


def clrp_numpy(model, x, units, dual="others", absolute=True, clip=True) -> np.ndarray:
    """Eq. 15: max(0, n(z+ map of y_k) - n(z+ map of y_-k)), n = division by the map's sum."""
    logits = forward(linear_layers(model), x)[-1]
    one_hot = np.eye(logits.shape[1])[units]
    start = np.abs(logits) if absolute else logits
    target = z_plus_numpy(model, x, one_hot * start)
    if dual == "others":
        opposite = z_plus_numpy(model, x, (1 - one_hot) * start)
    else:
        opposite = z_plus_numpy(model, x, one_hot * start, final="negated")

    def n(maps):  # a map that lost all relevance (sum 0) stays 0
        totals = maps.reshape(len(maps), -1).sum(axis=1).reshape(-1, *[1] * (maps.ndim - 1))
        return np.divide(maps, totals, out=np.zeros_like(maps), where=totals != 0)
    difference = n(target) - n(opposite)
    return np.maximum(difference, 0) if clip else difference


def _inputs(model, seed, batch=4):
    return np.random.default_rng(seed).normal(size=(batch, *model.inputs[0].shape[1:]))


def _units(model, x):
    return np.arange(len(x)) % model.outputs[0].shape[-1]


# --- Excitation Backprop -----------------------------------------------------------------------

@BUILDS
def test_excitation_backprop_matches_numpy(build):
    model = build(0)
    analyzer = keras_xai.create_analyzer("excitation_backprop", model, dtype="float64")
    for seed in SEEDS:
        randomize(model, seed + 100)  # new weights, same analyzer: it reads them live
        x = _inputs(model, seed)
        units = _units(model, x)
        expected = z_plus_numpy(model, x, np.eye(model.outputs[0].shape[-1])[units])
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(analyzer.analyze(x, units), expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("model_name", ["dense", "conv", "pooling"])
def test_excitation_backprop_conserves_probability(model_name):
    """Without biases every unit with relevance has a positive contribution, so the map is a
    distribution: sum 1 (max pooling routes, average pooling and GAP are z+ with weights > 0)."""
    model = TINY_MODELS[model_name](seed=6, bias_scale=0.0)
    x = _inputs(model, 6, batch=5).astype(np.float32)
    maps = keras_xai.create_analyzer("excitation_backprop", model).analyze(x)
    np.testing.assert_allclose(maps.reshape(len(x), -1).sum(axis=1), 1.0, rtol=1e-5)
    assert (maps >= 0).all()  # eq. 5 keeps the first layer non-negative for negative inputs too


@pytest.mark.parametrize("model_name", ["dense", "conv", "residual", "batchnorm"])
def test_excitation_backprop_is_z_plus_divided_by_the_logit(model_name):
    """EB starts from 1, LRP-z+ from the logit; on nets without average pooling (where lrp.z_plus
    uses the z-rule) that is the only difference, as the head only scales a linear pass."""
    model = TINY_MODELS[model_name](seed=7)
    x = _inputs(model, 7).astype(np.float32)
    eb = keras_xai.create_analyzer("excitation_backprop", model).analyze(x, neuron_selection=1)
    z_plus = keras_xai.create_analyzer("lrp.z_plus", model).analyze(x, neuron_selection=1)
    logit = model(x).numpy().reshape(len(x), -1)[:, 1].reshape(-1, *[1] * (x.ndim - 1))
    np.testing.assert_allclose(eb * logit, z_plus, rtol=1e-4, atol=1e-6 * np.abs(z_plus).max())


# --- contrastive Excitation Backprop -----------------------------------------------------------------

@BUILDS
def test_contrastive_excitation_backprop_matches_numpy(build):
    model = build(0, bias_scale=0.0)
    analyzer = keras_xai.create_analyzer("excitation_backprop.contrastive", model, dtype="float64")
    for seed in SEEDS:
        randomize(model, seed + 100, bias_scale=0.0)
        x = _inputs(model, seed)
        units = _units(model, x)
        ours = analyzer.analyze(x, units)
        expected = z_plus_numpy(model, x, np.eye(model.outputs[0].shape[-1])[units], final="contrastive")
        assert np.abs(expected).max() > 0 and (expected < 0).any()
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
        # Conservation: (Z+ - N+) m_k sums to 1 - 1 where the selected unit has positive and
        # negative contributions, and z+ below conserves (no biases).
        last_input = forward(linear_layers(model), x)[-2]
        contributions = last_input * linear_layers(model)[-1][0][:, units].T
        both = (contributions > 0).any(axis=1) & (contributions < 0).any(axis=1)
        assert both.any()
        np.testing.assert_allclose(ours.reshape(len(x), -1).sum(axis=1)[both], 0.0, atol=1e-9)


def _negated_output_layer(model):
    """A copy of the model whose final layer has the negated kernel (the dual units); the user's
    model is not touched."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    final = [layer for layer in copy.layers if isinstance(layer, L.Dense)][-1]
    kernel, *rest = final.get_weights()
    final.set_weights([-kernel, *rest])
    return copy


@pytest.mark.parametrize("model_name", list(TINY_MODELS))
def test_contrastive_excitation_backprop_difference_at_top_equals_difference_of_maps(model_name):
    """z+ is linear in the relevance: (Z+ - N+) at the top then z+ equals EB(k) minus EB of the
    dual unit (the same model with the final weights negated), also through Add and BatchNorm."""
    model = TINY_MODELS[model_name](seed=8)
    x = _inputs(model, 8).astype(np.float32)
    units = _units(model, x)
    contrastive = keras_xai.create_analyzer("excitation_backprop.contrastive", model).analyze(x, units)
    eb = keras_xai.create_analyzer("excitation_backprop", model).analyze(x, units)
    eb_dual = keras_xai.create_analyzer("excitation_backprop", _negated_output_layer(model)).analyze(x, units)
    scale = np.abs(contrastive).max()
    assert scale > 0
    assert np.abs(contrastive - (eb - eb_dual)).max() / scale <= 1e-5


@pytest.mark.parametrize("model_name", ["residual", "pooling"])
def test_contrastive_excitation_backprop_relevances_and_injection(model_name):
    model = TINY_MODELS[model_name](seed=9)
    x = _inputs(model, 9).astype(np.float32)
    analyzer = keras_xai.create_analyzer("excitation_backprop.contrastive", model)
    eb = keras_xai.create_analyzer("excitation_backprop", model)
    everything = analyzer.relevances(x, neuron_selection=1)
    np.testing.assert_array_equal(everything["input"], analyzer.analyze(x, neuron_selection=1))
    # Injected at the final layer's output, the contrast applies; below it plain EB.
    final = [layer.name for layer in model.layers if isinstance(layer, L.Dense)][-1]
    vector = np.random.default_rng(0).normal(size=(len(x), *model.get_layer(final).output.shape[1:]))
    at_final = analyzer.propagate_from(x, final, vector)
    np.testing.assert_allclose(at_final[final], vector, rtol=1e-6)
    below = keras_xai.graph.producer(model.get_layer(final).input).name
    np.testing.assert_allclose(analyzer.propagate_from(x, below, at_final[below])["input"],
                               eb.propagate_from(x, below, at_final[below])["input"], rtol=1e-6, atol=1e-9)


# --- contrastive LRP ---------------------------------------------------------------------------------

@BUILDS
@pytest.mark.parametrize("options", [
    {}, {"absolute_logits": False, "clip": False}, {"dual": "negated"}, {"clip": False},
], ids=["eq15_abs", "eq15_plain_unclipped", "negated", "unclipped"])
def test_contrastive_lrp_matches_numpy(build, options):
    model = build(0)
    analyzer = keras_xai.create_analyzer("lrp.contrastive", model, dtype="float64", **options)
    for seed in SEEDS:
        randomize(model, seed + 100)
        x = _inputs(model, seed)
        units = _units(model, x)
        expected = clrp_numpy(model, x, units, dual=options.get("dual", "others"),
                              absolute=options.get("absolute_logits", True), clip=options.get("clip", True))
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(analyzer.analyze(x, units), expected, rtol=1e-8,
                                   atol=1e-12 * np.abs(expected).max())


def test_contrastive_lrp_is_built_from_z_plus_maps():
    """The same map assembled from lrp.z_plus passes (target: analyze from y_k; dual: injection of
    |y| (1 - m_k) at the output), also with an input-layer rule, and every layer of relevances."""
    model = TINY_MODELS["conv"](seed=10)
    x = _inputs(model, 10).astype(np.float32)
    box = (-3.0, 3.0)
    ours = keras_xai.create_analyzer("lrp.contrastive", model, input_layer_rule=box)
    z_plus = keras_xai.create_analyzer("lrp.z_plus", model, input_layer_rule=box)
    logits = model(x).numpy()
    one_hot = np.eye(logits.shape[1])[np.argmax(logits, axis=1)]
    target = z_plus.relevances(x)
    dual = z_plus.propagate_from(x, "fc", (1 - one_hot) * np.abs(logits))
    everything = ours.relevances(x)
    for name in ("input", "conv1", "flatten"):
        def n(maps):
            return maps / maps.reshape(len(maps), -1).sum(axis=1).reshape(-1, *[1] * (maps.ndim - 1))
        expected = np.maximum(n(target[name]) - n(dual[name]), 0)
        np.testing.assert_allclose(everything[name], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_array_equal(everything["input"], ours.analyze(x))
    # propagate_from: the base z+ rule.
    vector = np.random.default_rng(1).normal(size=(len(x), 3))
    np.testing.assert_allclose(ours.propagate_from(x, "fc", vector)["input"],
                               z_plus.propagate_from(x, "fc", vector)["input"], rtol=1e-5, atol=1e-8)


# --- the point of the contrastive variants: class sensitivity --------------------------------------

def _median_cosine_between_classes(analyzer, x, classes) -> float:
    maps = np.stack([analyzer.analyze(x, neuron_selection=k).reshape(len(x), -1) for k in classes])
    unit = maps / np.linalg.norm(maps, axis=2, keepdims=True)
    cosines = [np.sum(unit[a] * unit[b], axis=1) for a in range(len(classes)) for b in range(a + 1, len(classes))]
    return float(np.median(np.abs(np.concatenate(cosines))))


def test_contrastive_maps_differ_between_classes_where_excitation_backprop_maps_do_not(cifar_logits):
    x = np.random.default_rng(11).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    classes = (0, 3, 7)
    plain = _median_cosine_between_classes(keras_xai.create_analyzer("excitation_backprop", cifar_logits), x, classes)
    contrastive = _median_cosine_between_classes(
        keras_xai.create_analyzer("excitation_backprop.contrastive", cifar_logits), x, classes)
    clrp = _median_cosine_between_classes(keras_xai.create_analyzer("lrp.contrastive", cifar_logits), x, classes)
    assert plain > 0.99, plain  # the z+ chain has converged: every class gets the same map
    assert contrastive < 0.9, contrastive
    assert clrp < 0.9, clrp


# --- the output-layer selector and errors --------------------------------------------------------

def test_output_layer_selector_finds_the_final_linear_layer():
    from keras_xai.canonize import canonicalize
    from keras_xai.graph import read_model
    import tensorflow as tf

    inputs = keras.Input((6,), name="input")
    x = L.Dense(5, activation="relu", name="hidden")(inputs)
    x = L.Dense(4, name="logits")(x)
    x = L.Activation("linear", name="identity")(x)
    outputs = L.Reshape((2, 2), name="grid")(x)
    flagged = [s.name for s in canonicalize(read_model(keras.Model(inputs, outputs)), tf.float32).steps
               if keras_xai.analyzers.SELECTORS["output_layer"](s)]
    assert flagged == ["logits"]
    for name, expected in (("residual", ["fc_last_axis"]), ("pooling", ["fc"]), ("dense", ["fc2"])):
        steps = canonicalize(read_model(TINY_MODELS[name]()), tf.float32).steps
        assert [s.name for s in steps if s.output_layer] == expected


def test_contrastive_methods_need_a_linear_output_layer():
    inputs = keras.Input((6, 6, 2), name="input")
    x = L.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    outputs = L.GlobalAveragePooling2D(name="gap")(x)
    model = randomize(keras.Model(inputs, outputs, name="gap_output"), 0)
    for name, params in (("excitation_backprop.contrastive", {}), ("lrp.contrastive", {"dual": "negated"})):
        with pytest.raises(UnsupportedLayerError, match="'gap' \\(GlobalAveragePooling2D\\)"):
            keras_xai.create_analyzer(name, model, **params)
    # Plain EB and CLRP with the other classes as the dual need no such layer.
    x = _inputs(model, 0).astype(np.float32)
    assert np.isfinite(keras_xai.create_analyzer("lrp.contrastive", model).analyze(x)).all()
    with pytest.raises(ValueError, match="dual must be one of"):
        keras_xai.create_analyzer("lrp.contrastive", model, dual="opposite")


def test_methods_are_listed():
    infos = {i.name: i for i in keras_xai.list_analyzers()}
    for name in ("excitation_backprop", "excitation_backprop.contrastive", "lrp.contrastive"):
        assert infos[name].reduction == "sum" and infos[name].family == "lrp" and "native" in infos[name].engines
    assert infos["lrp.contrastive"].parameters == {
        "dual": "others", "absolute_logits": True, "clip": True, "input_layer_rule": None}
