"""Native DeepLIFT (deep_lift.rescale / reveal_cancel / ablation) against independent references:

- a NumPy float64 implementation of deeplift 0.6.13's rules on dense ReLU and tanh nets (several
  seeds, shared and per-sample references), for the contributions, the multipliers at every layer
  and the injection of ``propagate_from``;
- NumPy versions of eq. 13 (the linear rule, with and without the cross terms) for one Dense and
  one strided Conv2D step, with different positive and negative multipliers;
- summation-to-delta in float64 on the appendix-D net and a residual net with BatchNorm;
- the deeplift package itself through ``engine="deeplift"`` (slow: a worker process).
"""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from keras_xai.deeplift import (DeepLiftActivationRule, DeepLiftBatchNormRule, DeepLiftLinearRule, DeepLiftPass,
                                StepState, _signed_contributions, _signed_products, split_by_sign)
from keras_xai.kinds import Kind
from keras_xai.modifiers import ABSOLUTE, KEEP
from keras_xai.rules import Context, ReferenceContext
from native_test_models import cifar_net_logits, randomize
from numpy_deeplift import NumpyDeepLift, chain_weights, np_linear_rule

L = keras.layers
METHODS = ("deep_lift.rescale", "deep_lift.reveal_cancel", "deep_lift.ablation")
MODES = {"deep_lift.rescale": ("rescale", False), "deep_lift.reveal_cancel": ("reveal_cancel", False),
         "deep_lift.ablation": ("reveal_cancel", True)}


STAGE_NAMES = ["input", "fc1", "relu1", "fc2", "relu2", "fc3"]


def dense_chain(seed, activation="relu"):
    """Dense(6) ReLU Dense(5) ReLU Dense(3), some hidden ReLUs dead for both x and the reference
    (for tanh: no saturated units, where the sign of tanh(z) - tanh(z0) ~ 1e-17 depends on the
    last bit of each library's tanh)."""
    inputs = keras.Input((4,), name="input")
    x = L.Activation(activation, name="relu1")(L.Dense(6, name="fc1")(inputs))
    x = L.Activation(activation, name="relu2")(L.Dense(5, name="fc2")(x))
    model = keras.Model(inputs, L.Dense(3, name="fc3")(x), name="chain")
    randomize(model, seed, bias_scale=0.5)
    if activation == "relu":
        bias = model.get_layer("fc1").bias
        bias.assign(np.r_[np.full(2, -20.0), bias.numpy()[2:]].astype(np.float32))
    return model


def chain_inputs(seed, references):
    x = np.random.default_rng(seed + 100).normal(size=(5, 4))
    x[:, 0] = references[:, 0]  # a zero difference at the input
    x[-1] = references[-1]  # no difference at all: Rescale takes the gradient at the reference
    return x


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_dense_chain_equals_numpy(method, seed):
    model = dense_chain(seed)
    reference = np.random.default_rng(seed).normal(size=4) if seed % 2 else 0.0
    x = chain_inputs(seed, np.broadcast_to(reference, (5, 4)))
    mode, ablation = MODES[method]
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", reference=reference)
    selection = np.arange(5) % 3
    numpy_dl = NumpyDeepLift(chain_weights(model), mode, ablation)
    stages = numpy_dl.forward(x, np.broadcast_to(reference, x.shape).astype(np.float64))
    expected = numpy_dl.reported(stages, numpy_dl.backward(stages, 5, np.eye(3)[selection]))

    got = analyzer.relevances(x, neuron_selection=selection)
    for s, name in enumerate(STAGE_NAMES):
        np.testing.assert_allclose(got[name], expected[s], rtol=1e-10, atol=1e-12, err_msg=f"{method} at {name}")
    np.testing.assert_array_equal(analyzer.analyze(x, neuron_selection=selection), got["input"])
    pairs = numpy_dl.backward(stages, 5, np.eye(3)[selection])
    contributions = analyzer.contributions(x, neuron_selection=selection)
    for s, name in enumerate(STAGE_NAMES):
        (m_pos, m_neg), (_, _, c_pos, c_neg) = pairs[s], stages[s]
        np.testing.assert_allclose(contributions[name], m_pos * c_pos + m_neg * c_neg, rtol=1e-10, atol=1e-12)
    if mode == "reveal_cancel":  # the case where the two multipliers differ is really exercised
        assert any(not np.allclose(*pairs[s]) for s in (1, 3))


@pytest.mark.parametrize("method", METHODS)
def test_tanh_chain_equals_numpy(method):
    model = dense_chain(5, activation="tanh")
    reference = np.random.default_rng(5).normal(size=(5, 4))
    x = chain_inputs(5, reference)
    mode, ablation = MODES[method]
    numpy_dl = NumpyDeepLift(chain_weights(model), mode, ablation, activation="tanh")
    stages = numpy_dl.forward(x, reference)
    expected = numpy_dl.reported(stages, numpy_dl.backward(stages, 5, np.eye(3)[np.zeros(5, int)]))
    got = keras_xai.create_analyzer(method, model, dtype="float64", reference=reference).relevances(x, 0)
    # TF's and NumPy's tanh differ in the last bits; RevealCancel divides near-zero contributions,
    # pushed to 1e-7 by the pseudocount, by 1e-7: absolute errors up to ~1e-10 on values ~0.1.
    for s, name in enumerate(STAGE_NAMES):
        np.testing.assert_allclose(got[name], expected[s], rtol=1e-8, atol=1e-9, err_msg=f"{method} at {name}")


@pytest.mark.parametrize("method", METHODS)
def test_propagate_from_equals_numpy(method):
    model = dense_chain(7)
    x = chain_inputs(7, np.zeros((5, 4)))
    mode, ablation = MODES[method]
    vector = np.random.default_rng(8).normal(size=(5, 5))
    numpy_dl = NumpyDeepLift(chain_weights(model), mode, ablation)
    stages = numpy_dl.forward(x, np.zeros_like(x))
    for start, name in [(3, "fc2"), (4, "relu2")]:
        expected = numpy_dl.reported(stages, numpy_dl.backward(stages, start, vector))
        analyzer = keras_xai.create_analyzer(method, model, dtype="float64")
        got = analyzer.propagate_from(x, name, vector)
        assert set(got) == set(STAGE_NAMES[:start + 1])
        for s in range(start + 1):
            np.testing.assert_allclose(got[STAGE_NAMES[s]], expected[s], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{method} injected at {name}, at {STAGE_NAMES[s]}")
        contributions = analyzer.propagate_contributions(x, name, vector)
        pairs = numpy_dl.backward(stages, start, vector)
        for s in range(start + 1):
            m_pos, m_neg = pairs[s]
            np.testing.assert_allclose(contributions[STAGE_NAMES[s]], m_pos * stages[s][2] + m_neg * stages[s][3],
                                       rtol=1e-10, atol=1e-12)


# --- the linear step alone, with different positive and negative multipliers ----------------------

def _linear_step(model, layer_name, dtype="float64"):
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, dtype=dtype)
    step = next(s for s in analyzer._model.steps if s.layer.name == layer_name and s.kind.has_kernel)
    return step


def _dense_matrix_of(layer, input_shape):
    """The matrix of a linear layer without bias: its output for every basis vector of the input."""
    size = int(np.prod(input_shape))
    basis = np.eye(size).reshape(size, *input_shape)
    no_bias = layer.bias.numpy().copy()
    layer.bias.assign(np.zeros_like(no_bias))
    try:
        matrix = layer(basis.astype(np.float32)).numpy().astype(np.float64).reshape(size, -1)
    finally:
        layer.bias.assign(no_bias)
    return matrix


@pytest.mark.parametrize("ablation", [False, True])
@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_linear_step_equals_equation_13(kind, ablation):
    rng = np.random.default_rng(4)
    if kind == "dense":
        inputs = keras.Input((7,), name="input")
        outputs = L.Dense(4, name="lin")(inputs)
    else:
        inputs = keras.Input((5, 5, 2), name="input")
        outputs = L.Flatten(name="flat")(L.Conv2D(3, 3, strides=2, padding="same", name="lin")(inputs))
    model = randomize(keras.Model(inputs, outputs), 5)
    layer = model.get_layer("lin")
    step = _linear_step(model, "lin")
    x = rng.normal(size=(3, *inputs.shape[1:]))
    x0 = rng.normal(size=x.shape)
    x0[:, 0] = x[:, 0]  # zero differences
    out_shape = (3, *layer.output.shape[1:])
    m_pos, m_neg = rng.normal(size=out_shape), rng.normal(size=out_shape)

    def t(v):
        return tf.constant(v, tf.float64)
    difference = t(x) - t(x0)  # the input's forward state carries it
    context = Context(reference=ReferenceContext([t(x0)], None, [StepState(*split_by_sign(difference), difference)],
                                                 None))
    (got_pos, got_neg), = DeepLiftLinearRule(ablation)(step, [t(x)], None, (t(m_pos), t(m_neg)), context)
    # Another pass's state (no StepState): the rule computes the difference itself.
    other = Context(reference=ReferenceContext([t(x0)], None, [None], None))
    (other_pos, other_neg), = DeepLiftLinearRule(ablation)(step, [t(x)], None, (t(m_pos), t(m_neg)), other)
    np.testing.assert_array_equal(other_pos.numpy(), got_pos.numpy())
    np.testing.assert_array_equal(other_neg.numpy(), got_neg.numpy())
    W = _dense_matrix_of(layer, x.shape[1:])
    expected_pos, expected_neg = np_linear_rule(W, (x - x0).reshape(3, -1), m_pos.reshape(3, -1),
                                                m_neg.reshape(3, -1), ablation)
    np.testing.assert_allclose(got_pos.numpy().reshape(3, -1), expected_pos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_neg.numpy().reshape(3, -1), expected_neg, rtol=1e-5, atol=1e-6)
    if ablation:  # decoupled: the positive multipliers never see m-, the negative ones never see m+
        assert not np.allclose(expected_pos, expected_neg)
        again_pos, again_neg = DeepLiftLinearRule(True)(step, [t(x)], None, (t(m_pos), t(0 * m_neg)), context)[0]
        np.testing.assert_array_equal(again_pos.numpy(), got_pos.numpy())
        assert not again_neg.numpy().any()
    else:
        assert got_pos is got_neg


@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_signed_contributions_keep_exact_zeros(kind):
    """The two-product split (W d +- |W| |d|) / 2 equals the four sign-split products up to rounding,
    and is exactly 0 where every non-zero term w d has the other sign (RevealCancel's pseudocount
    takes the sign of near-zero contributions, so 1e-9 there would change the multipliers)."""
    rng = np.random.default_rng(11)
    if kind == "dense":
        inputs = keras.Input((40,), name="input")
        outputs = L.Dense(6, name="lin")(inputs)
    else:
        inputs = keras.Input((6, 6, 4), name="input")
        outputs = L.Conv2D(5, 3, padding="same", name="lin")(inputs)
    model = randomize(keras.Model(inputs, outputs), 3)
    step = _linear_step(model, "lin", dtype="float32")
    kernel = model.get_layer("lin").kernel.numpy()
    difference = rng.normal(size=(4, *inputs.shape[1:])).astype(np.float32)
    magnitudes = rng.uniform(0.1, 2.0, size=inputs.shape[1:]).astype(np.float32)
    if kind == "dense":  # sample 0: every term of unit 2 negative, sample 1: every term of unit 4 positive
        difference[0] = -np.sign(kernel[:, 2]) * magnitudes
        difference[1] = np.sign(kernel[:, 4]) * magnitudes
        zero_positive, zero_negative = (0, 2), (1, 4)
    else:  # only the receptive field of output (2, 3) non-zero, against (with) channel 1's kernel taps
        difference[:2] = 0
        difference[0, 1:4, 2:5] = -np.sign(kernel[..., 1]) * magnitudes[1:4, 2:5]
        difference[1, 1:4, 2:5] = np.sign(kernel[..., 1]) * magnitudes[1:4, 2:5]
        zero_positive, zero_negative = (0, 2, 3, 1), (1, 2, 3, 1)
    d = tf.constant(difference)
    operation = step.operation

    @tf.function  # as the engine runs them: compiled, with TF's graph rewrites (oneDNN kernels)
    def both_ways(d):
        unclamped = (operation.forward([d], KEEP, None), operation.forward([tf.abs(d)], ABSOLUTE, None))
        return _signed_contributions(operation, d), _signed_products(operation, *split_by_sign(d)), unclamped

    for run in (both_ways, both_ways.python_function):  # compiled and eager
        (positive, negative), (four_positive, four_negative), (s, t) = [[v.numpy() for v in pair]
                                                                        for pair in run(d)]
        assert four_positive[zero_positive] == 0 and four_negative[zero_negative] == 0
        # t is exactly -s (s) there: zero without the clamp, not a rounding residue
        assert (s + t)[zero_positive] == 0 and (s - t)[zero_negative] == 0
        assert positive[zero_positive] == 0 and negative[zero_negative] == 0
        assert negative[zero_positive] < 0 and positive[zero_negative] > 0
        scale = np.abs(four_negative - four_positive).max()
        np.testing.assert_allclose(positive, four_positive, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(negative, four_negative, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("ablation", [False, True])
def test_batch_norm_step_by_hand(ablation):
    """k = gamma / sqrt(var + eps) per channel, some negative: deeplift's (k+ m+ + k- m-,
    k- m+ + k+ m-); the ablation's decoupled (k+ m+, k- m-)."""
    inputs = keras.Input((2, 2, 3), name="input")
    model = keras.Model(inputs, L.Flatten(name="flat")(L.BatchNormalization(epsilon=0.01, name="bn")(inputs)))
    gamma, variance = np.array([1.5, -2.0, 0.5]), np.array([0.25, 1.0, 4.0])
    model.get_layer("bn").set_weights([gamma, np.array([0.1, -0.2, 0.3]), np.array([0.5, 0.0, -1.0]), variance])
    k = model.get_layer("bn").get_weights()[0].astype(np.float64) / np.sqrt(
        model.get_layer("bn").get_weights()[3].astype(np.float64) + 0.01)
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64")
    step = next(s for s in analyzer._model.steps if s.kind is Kind.BATCH_NORM)
    rng = np.random.default_rng(6)
    x, x0 = rng.normal(size=(2, 2, 2, 3)), rng.normal(size=(2, 2, 2, 3))
    m_pos, m_neg = rng.normal(size=x.shape), rng.normal(size=x.shape)

    def t(v):
        return tf.constant(v, tf.float64)
    context = Context(reference=ReferenceContext([t(x0)], None, [None], None))
    (got_pos, got_neg), = DeepLiftBatchNormRule(ablation)(step, [t(x)], None, (t(m_pos), t(m_neg)), context)
    kp, kn = np.maximum(k, 0), np.minimum(k, 0)
    if ablation:
        expected = (kp * m_pos, kn * m_neg)
    else:
        expected = (kp * m_pos + kn * m_neg, kn * m_pos + kp * m_neg)
    np.testing.assert_allclose(got_pos.numpy(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(got_neg.numpy(), expected[1], rtol=1e-6)


# --- summation-to-delta ------------------------------------------------------------------------------

def residual_bn_net(seed=3, max_pooling=True):
    """Every layer type DeepLIFT handles natively: ZeroPadding2D, fused ReLU, max pooling, BatchNorm
    (some gammas negative), Add, average pooling, Concatenate, GlobalAveragePooling2D, Dense.
    The max pooling sees a constant reference for the zero reference (conv1 on an all-zero padded input)."""
    inputs = keras.Input((8, 8, 3), name="input")
    x = L.Conv2D(6, 3, activation="relu", name="conv1")(L.ZeroPadding2D(1, name="pad")(inputs))
    pool = (L.MaxPooling2D if max_pooling else L.AveragePooling2D)(2, name="pool1")(x)
    y = L.BatchNormalization(name="bn2")(L.Conv2D(6, 3, padding="same", name="conv2")(pool))
    y = L.Conv2D(6, 3, padding="same", name="conv3")(L.Activation("relu", name="relu2")(y))
    y = L.Activation("relu", name="relu_add")(L.Add(name="add")([pool, y]))
    z = L.Concatenate(name="concat")([L.AveragePooling2D(2, name="avg_main")(y),
                                      L.AveragePooling2D(2, name="avg_side")(pool)])
    z = L.GlobalAveragePooling2D(name="gap")(L.BatchNormalization(name="bn_top")(z))
    return randomize(keras.Model(inputs, L.Dense(5, name="fc")(z), name="residual_bn"), seed, bias_scale=0.3)


def appendix_d_net_without_conv_biases():
    """The appendix-D net; zero convolution biases make the zero reference's activations constant
    in every max pooling window, where deeplift's max pooling rule (the gradient) is exact. (With
    biases, 'same' padding makes border windows differ; deeplift then misses the delta as much as
    we do, see the package comparison.)"""
    model = cifar_net_logits()
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    return model


def _delta(analyzer, x, reference, selection):
    f = analyzer._engine.predict(x).numpy()
    f0 = analyzer._engine.predict(np.broadcast_to(reference, x.shape)).numpy()
    rows = np.arange(len(x))
    return f[rows, selection] - f0[rows, selection]


@pytest.fixture(scope="module")
def summation_models():
    return {"appendix_d": appendix_d_net_without_conv_biases(), "residual_bn": residual_bn_net()}


@pytest.mark.parametrize("model_name", ["appendix_d", "residual_bn"])
@pytest.mark.parametrize("method", METHODS)
def test_summation_to_delta(summation_models, model_name, method):
    model = summation_models[model_name]
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 1, size=(3, *model.inputs[0].shape[1:]))
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64")
    selection = np.array([0, 3, 4])
    contributions = analyzer.analyze(x, neuron_selection=selection)
    assert contributions.dtype == np.float64
    delta = _delta(analyzer, x, 0.0, selection)
    np.testing.assert_allclose(analyzer._engine.predict(x).numpy(), model(x).numpy().reshape(3, -1),
                               rtol=1e-4, atol=1e-5)  # the float64 forward pass is the model's
    error = np.abs(contributions.reshape(3, -1).sum(axis=1) - delta).max() / np.abs(delta).max()
    if method == "deep_lift.ablation":
        assert error > 1e-3, "decoupling the chains of eq. 13 must break summation-to-delta"
    else:
        assert error <= 1e-5, f"{method} on {model_name}: summation-to-delta off by {error:.2e} (relative)"


@pytest.mark.parametrize("method", METHODS[:2])
def test_summation_to_delta_with_a_reference_per_sample(method):
    model = residual_bn_net(4, max_pooling=False)  # any reference: no max pooling to break the sum
    rng = np.random.default_rng(10)
    x = rng.uniform(0, 1, size=(2, 8, 8, 3))
    reference = rng.uniform(0, 1, size=x.shape)
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", reference=reference)
    delta = _delta(analyzer, x, reference, np.array([1, 2]))
    total = analyzer.analyze(x, neuron_selection=[1, 2]).reshape(2, -1).sum(axis=1)
    assert np.abs(total - delta).max() <= 1e-5 * np.abs(delta).max()


# --- reference handling --------------------------------------------------------------------------------

def test_reference_forms_agree():
    model = dense_chain(2)
    x = chain_inputs(2, np.zeros((5, 4)))
    one = np.random.default_rng(3).normal(size=4)
    by_sample = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64",
                                          reference=np.tile(one, (5, 1))).analyze(x)
    by_one = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64", reference=one).analyze(x)
    np.testing.assert_array_equal(by_sample, by_one)
    scalar = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64", reference=0.5).analyze(x)
    full = keras_xai.create_analyzer("deep_lift.rescale", model, dtype="float64",
                                     reference=np.full(4, 0.5)).analyze(x)
    np.testing.assert_array_equal(scalar, full)
    assert not np.allclose(scalar, by_one)


def test_bad_references_are_refused():
    model = dense_chain(0)
    with pytest.raises(ValueError, match=r"reference of shape \(3,\) does not fit"):
        keras_xai.create_analyzer("deep_lift.rescale", model, reference=np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        keras_xai.create_analyzer("deep_lift.reveal_cancel", model, reference=np.nan)
    analyzer = keras_xai.create_analyzer("deep_lift.rescale", model, reference=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(2, 4\) does not fit inputs of shape \(3, 4\)"):
        analyzer.analyze(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="nonlinear_mode"):
        keras_xai.create_analyzer("deep_lift.ablation", model, nonlinear_mode="gradient")


def test_registered_for_both_engines():
    infos = {i.name: i for i in keras_xai.list_analyzers()}
    for name in METHODS:
        assert infos[name].family == "deep_lift" and infos[name].reduction == "sum"
        assert {"native", "deeplift"} <= set(infos[name].engines)
        assert "reference" in infos[name].parameters
    assert infos["deep_lift.ablation"].parameters["nonlinear_mode"] == "reveal_cancel"


# --- the deeplift package (0.6.13, in the worker process of engine="deeplift") ------------------------

PACKAGE_CASES = {  # name -> (model builder, inputs, injection layer)
    "appendix_d": (cifar_net_logits, lambda rng: rng.uniform(0, 1, size=(3, 32, 32, 3)), "conv4"),
    "residual_bn": (residual_bn_net, lambda rng: rng.normal(size=(3, 8, 8, 3)), "add"),
}


def _relative(ours, theirs) -> float:
    scale = np.abs(theirs).max()
    return float(np.abs(ours - theirs).max() / scale) if scale > 0 else float(np.abs(ours).max())


@pytest.fixture(scope="module")
def package_results():
    """Both engines on both nets for all three methods (one worker process for all of them)."""
    results = {}
    rng = np.random.default_rng(11)
    for case, (build, inputs, layer) in PACKAGE_CASES.items():
        model = build()
        x = inputs(rng).astype(np.float32)
        vector = rng.normal(size=(len(x), *model.get_layer(layer).output.shape[1:])).astype(np.float32)
        references = {"zero": 0.0, "per_sample": rng.uniform(0, 1, size=x.shape).astype(np.float32)}
        for method in METHODS:
            for reference_name, reference in references.items():
                if reference_name == "per_sample" and method != "deep_lift.reveal_cancel":
                    continue
                pair = []
                for engine in ("deeplift", "native"):
                    # Both engines name the quantities alike: contributions and multipliers.
                    analyzer = keras_xai.create_analyzer(method, model, engine=engine, reference=reference)
                    pair.append((analyzer.analyze(x),
                                 {"contributions": analyzer.contributions(x),
                                  "multipliers": analyzer.relevances(x)},
                                 {"contributions": analyzer.propagate_contributions(x, layer, vector),
                                  "multipliers": analyzer.propagate_from(x, layer, vector)}))
                results[(case, method, reference_name)] = pair
    return results


PACKAGE_COMPARISONS = [(case, method, "zero") for case in PACKAGE_CASES for method in METHODS] + [
    (case, "deep_lift.reveal_cancel", "per_sample") for case in PACKAGE_CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case, method, reference", PACKAGE_COMPARISONS)
def test_equals_deeplift_package(package_results, case, method, reference):
    theirs_all, ours_all = package_results[(case, method, reference)]
    (theirs, their_layers, their_injected), (ours, our_layers, our_injected) = theirs_all, ours_all
    assert _relative(ours, theirs) <= 1e-4
    assert np.abs(theirs).max() > 0
    for quantity in ("contributions", "multipliers"):
        assert len(their_layers[quantity]) > 3, quantity
        for name, value in their_layers[quantity].items():
            assert _relative(our_layers[quantity][name], value) <= 1e-4, f"{quantity} at {name}"
        assert set(their_injected[quantity]) <= set(our_injected[quantity])
        for name, value in their_injected[quantity].items():
            assert _relative(our_injected[quantity][name], value) <= 1e-4, f"{quantity} at {name} after injection"


def test_reveal_cancel_rule_needs_the_contributions_of_a_reveal_cancel_pass():
    inputs = keras.Input((6,), name="input")
    model = randomize(keras.Model(inputs, L.Activation("relu", name="act")(L.Dense(6, name="lin")(inputs))), 2)
    analyzer = keras_xai.create_analyzer("deep_lift.reveal_cancel", model)
    step = analyzer._model.steps[analyzer._model.layer_steps["act"]]
    rng = np.random.default_rng(3)
    z, z0, m = (tf.constant(rng.normal(size=(2, 6)), tf.float32) for _ in range(3))
    y, y0 = tf.nn.relu(z), tf.nn.relu(z0)
    rescale_pass = DeepLiftPass(0.0, "rescale")  # multipliers only: no contributions after the input
    before = rescale_pass.state(analyzer._model.steps[1], [None], [None], z, z0, [StepState(None, None, z - z0)])
    after = rescale_pass.state(step, [z], [z0], y, y0, [before])
    assert after.positive is None and after.factor is not None
    with pytest.raises(ValueError, match="layer .*act.*reveal_cancel"):
        DeepLiftActivationRule("reveal_cancel")(step, [z], y, (m, m),
                                                Context(reference=ReferenceContext([z0], y0, [before], after)))
    # With the contributions (a RevealCancel pass), the rule's ratios are the state's.
    rc_pass = DeepLiftPass(0.0, "reveal_cancel")
    positive, negative = split_by_sign(z - z0)
    before = StepState(positive, negative, z - z0)
    after = rc_pass.state(step, [z], [z0], y, y0, [before])
    (got_pos, got_neg), = DeepLiftActivationRule("reveal_cancel")(
        step, [z], y, (m, m), Context(reference=ReferenceContext([z0], y0, [before], after)))
    np.testing.assert_array_equal(got_pos.numpy(), (after.ratios[0] * m).numpy())
    np.testing.assert_array_equal(got_neg.numpy(), (after.ratios[1] * m).numpy())
