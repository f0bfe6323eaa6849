"""Each rule inside the engine, on one-layer Keras models, against the NumPy float64 equations of
``numpy_rules.py``: the relevance at the layer input after injecting ``R`` at its output.
(``test_rules_on_one_step.py`` calls the rules on a single step, without a model or the engine.)
"""
import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from keras_xai import rules
from keras_xai.canonize import Step
from keras_xai.kinds import Kind
from keras_xai.modifiers import KEEP
from numpy_rules import CASES, conv_matrix, np_alpha_beta, np_epsilon, np_gamma

SEEDS = [0, 1, 2]


# --- layers and their matrices ----------------------------------------------------------------

def dense_layer_model(rng):
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(5,), name="input"),
                              keras.layers.Dense(4, name="layer")])
    model.set_weights([rng.normal(size=(5, 4)), rng.normal(scale=0.5, size=4)])
    W, b = model.get_weights()
    return model, W.astype(np.float64), b.astype(np.float64)


def conv_layer_model(rng, padding):
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(5, 5, 2), name="input"),
                              keras.layers.Conv2D(3, 3, padding=padding, name="layer")])
    model.set_weights([rng.normal(size=(3, 3, 2, 3)), rng.normal(scale=0.5, size=3)])
    kernel, b = (w.astype(np.float64) for w in model.get_weights())
    out_positions = model.outputs[0].shape[1] * model.outputs[0].shape[2]
    return model, conv_matrix(kernel, 5, 5, padding), np.tile(b, out_positions)


LAYERS = {
    "dense": dense_layer_model,
    "conv_valid": lambda rng: conv_layer_model(rng, "valid"),
    "conv_same": lambda rng: conv_layer_model(rng, "same"),
}


def engine_analyzer(model, rule):
    method = "gradient" if isinstance(rule, rules.GradientRule) else "lrp.z"
    params = {} if method == "gradient" else {"rules": [("kernel", rule)]}
    return keras_xai.create_analyzer(method, model, dtype="float64", **params)


def engine_relevance(analyzer, model, x, R):
    return analyzer.propagate_from(x, "layer", R.reshape(len(x), *model.outputs[0].shape[1:]))["input"]


def _seeded_layer(layer, model, seed):
    """The layer's model with the seed's weights (the analyzer reads the live weights, so one
    compiled pass serves every seed) and its matrix form."""
    rng = np.random.default_rng(seed)
    fresh, W, b = LAYERS[layer](rng)
    model.set_weights(fresh.get_weights())
    return rng, W, b


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("case", list(CASES))
def test_rule_matches_numpy_equation(case, layer):
    rule, equation = CASES[case]
    model = LAYERS[layer](np.random.default_rng(0))[0]
    analyzer = engine_analyzer(model, rule)
    for seed in SEEDS:
        rng, W, b = _seeded_layer(layer, model, seed)
        x = rng.normal(size=(3, *model.inputs[0].shape[1:]))
        if case == "z_plus_fast":
            x = np.abs(x)  # the rule assumes non-negative input
        R = rng.normal(size=(3, W.shape[1]))
        expected = np.stack([equation(xi.ravel(), W, b, Ri) for xi, Ri in zip(x, R)])
        ours = engine_relevance(analyzer, model, x, R).reshape(len(x), -1)
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12, err_msg=f"{case} {layer} seed {seed}")


def test_lrp_gamma_is_a_named_method_and_gamma_0_is_the_z_rule():
    rng = np.random.default_rng(3)
    model, W, b = dense_layer_model(rng)
    x = rng.normal(size=(3, 5))
    gamma = keras_xai.create_analyzer("lrp.gamma", model, gamma=0.5, dtype="float64")
    logits = x @ W + b
    selected = np.argmax(logits, axis=1)
    R = np.zeros_like(logits)
    R[np.arange(3), selected] = logits[np.arange(3), selected]  # LRP starts from the selected logit
    expected = np.stack([np_gamma(xi, W, b, Ri, 0.5) for xi, Ri in zip(x, R)])
    np.testing.assert_allclose(gamma.analyze(x), expected, rtol=1e-9, atol=1e-12)
    as_z = keras_xai.create_analyzer("lrp.gamma", model, gamma=0, dtype="float64").analyze(x)
    np.testing.assert_allclose(as_z, keras_xai.create_analyzer("lrp.z", model, dtype="float64").analyze(x),
                               rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        keras_xai.create_analyzer("lrp.gamma", model, gamma=-1)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_z_rule_without_bias_conserves_relevance(layer):
    model = LAYERS[layer](np.random.default_rng(0))[0]
    analyzer = engine_analyzer(model, rules.ZRule(bias=False))
    for seed in SEEDS:
        rng, W, _ = _seeded_layer(layer, model, seed)
        x = rng.normal(size=(2, *model.inputs[0].shape[1:]))
        R = rng.normal(size=(2, W.shape[1]))
        ours = engine_relevance(analyzer, model, x, R)
        np.testing.assert_allclose(ours.reshape(2, -1).sum(1), R.sum(1), rtol=1e-9)


@pytest.mark.parametrize("case", ["alpha1_beta0", "alpha2_beta1", "z_plus", "w_square", "flat", "gamma"])
def test_bias_free_rules_conserve_relevance(case):
    rule, _ = CASES[case]
    rng = np.random.default_rng(5)
    model, W, _ = dense_layer_model(rng)
    model.layers[-1].bias.assign(np.zeros(4))
    x, R = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    ours = engine_relevance(engine_analyzer(model, rule), model, x, R)
    np.testing.assert_allclose(ours.sum(1), R.sum(1), rtol=1e-9)


# --- a residual block with BatchNorm, computed by hand ----------------------------------------------

BN_EPS = 1e-3


def residual_block():
    """x (2) -> dense A (2) -> BatchNorm -> + x -> relu -> dense out (1)."""
    inputs = keras.Input((2,), name="input")
    branch = keras.layers.Dense(2, name="dense_a")(inputs)
    branch = keras.layers.BatchNormalization(epsilon=BN_EPS, name="bn")(branch)
    added = keras.layers.Add(name="add")([inputs, branch])
    hidden = keras.layers.Activation("relu", name="relu")(added)
    outputs = keras.layers.Dense(1, name="dense_out")(hidden)
    model = keras.Model(inputs, outputs)
    A, a = np.array([[1.0, -2.0], [0.5, 1.5]]), np.array([0.1, -0.3])
    V, v = np.array([[1.0], [-0.7]]), np.array([0.2])
    bn = [np.array(w) for w in ([2.0, -0.5], [0.3, -0.2], [0.5, -1.0], [3.0, 0.25])]
    model.set_weights([A, a, *bn, V, v])
    # The variables are float32: compute by hand with exactly the values they hold.
    return model, [w.astype(np.float64) for w in model.get_weights()]


def hand_residual_relevance(x, rule_equation, weights):
    """Backward pass through the block with the same rule on every linear piece (NumPy)."""
    A, a, gamma, beta, mean, variance, V, v = weights
    scale = gamma / np.sqrt(variance + np.float32(BN_EPS))  # BatchNorm as the affine map k x + c
    offset = beta - mean * scale
    u = x @ A + a
    n = u * scale + offset
    s = x + n
    h = np.maximum(s, 0)
    y = h @ V + v
    R_h = rule_equation(h, V, v, y)  # LRP starts from the output value
    R_s = R_h  # ReLU passes relevance on
    stacked = np.concatenate([x, n])  # Add = identity weights stacked per input, no bias
    R_x_skip, R_n = np.split(rule_equation(stacked, np.vstack([np.eye(2), np.eye(2)]), np.zeros(2), R_s), 2)
    R_u = rule_equation(u, np.diag(scale), offset, R_n)
    R_x_branch = rule_equation(x, A, a, R_u)
    return {"dense_out": y, "relu": R_h, "add": R_s, "bn": R_n, "dense_a": R_u,
            "input": R_x_skip + R_x_branch}


@pytest.mark.parametrize("method, equation", [
    ("lrp.z_plus", lambda *a: np_alpha_beta(*a, 1, 0, bias=False)),
    ("lrp.alpha_1_beta_0", lambda *a: np_alpha_beta(*a, 1, 0)),
    ("lrp.alpha_2_beta_1", lambda *a: np_alpha_beta(*a, 2, 1)),
    ("lrp.epsilon", lambda *a: np_epsilon(*a, 1e-7)),
])
def test_residual_block_with_batchnorm_by_hand(method, equation):
    model, weights = residual_block()
    x = np.array([[0.8, -0.4], [-1.2, 0.9], [0.3, 0.6]])
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64")
    ours = analyzer.relevances(x, neuron_selection=0)
    for i in range(len(x)):
        expected = hand_residual_relevance(x[i], equation, weights)
        for name in ("relu", "add", "bn", "dense_a", "input"):
            np.testing.assert_allclose(ours[name][i], expected[name], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{method}, sample {i}, at {name}")


def test_add_with_explicit_numbers():
    """a = 2x, b = -x, y = a + b; at x = 1: z+ gives all relevance to a; alpha2-beta1 gives
    2 to a and -1 to b (activating 2 * 1, inhibiting 1 * 1)."""
    inputs = keras.Input((1,), name="input")
    a = keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(2.0), name="a")(inputs)
    b = keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(-1.0), name="b")(inputs)
    model = keras.Model(inputs, keras.layers.Add(name="add")([a, b]))
    x = np.ones((1, 1))
    z_plus = keras_xai.create_analyzer("lrp.z_plus", model, dtype="float64").relevances(x)
    assert (z_plus["a"][0, 0], z_plus["b"][0, 0]) == (1.0, 0.0)
    alpha_beta = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model, dtype="float64").relevances(x)
    assert (alpha_beta["a"][0, 0], alpha_beta["b"][0, 0]) == (2.0, -1.0)
    z = keras_xai.create_analyzer("lrp.z", model, dtype="float64").relevances(x)
    assert (z["a"][0, 0], z["b"][0, 0]) == (2.0, -1.0)


# --- conservation through the layers that only move values ---------------------------------------

#: Layers where all relevance of the logit passes (every path from the output to the input crosses them).
CUTS = {"residual": ("input", "stem", "concat", "flatten", "reshape", "fc_last_axis"),
        "pooling": ("input", "conv1", "relu1", "max_pool", "conv2", "relu2", "avg_pool", "pad", "gap")}


@pytest.mark.parametrize("model_name", sorted(CUTS))
@pytest.mark.parametrize("method", ["lrp.z", "lrp.epsilon"])
def test_relevance_is_conserved_through_concatenate_reshape_padding_and_pooling(model_name, method):
    """Without biases (BatchNorm: zero mean and beta, so its offset is 0) the z-rule conserves the
    logit at every cut of the graph: Concatenate, Reshape, ZeroPadding2D, Flatten, max and average
    pooling, Add and BatchNorm pass relevance on without loss or gain (epsilon 1e-7: nearly)."""
    from native_test_models import TINY_MODELS
    model = TINY_MODELS[model_name](seed=8, bias_scale=0.0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, np.zeros_like(beta), np.zeros_like(mean), variance])
    x = np.random.default_rng(8).normal(size=(3, *model.inputs[0].shape[1:]))
    unit = 1
    logits = model(x.astype(np.float32)).numpy()[:, unit].astype(np.float64)
    relevances = keras_xai.create_analyzer(method, model, dtype="float64").relevances(x, neuron_selection=unit)
    assert np.abs(logits).min() > 1e-3
    for name in CUTS[model_name]:
        totals = relevances[name].reshape(len(x), -1).sum(axis=1)
        np.testing.assert_allclose(totals, logits, rtol=1e-5 if method == "lrp.z" else 1e-4, err_msg=name)


@pytest.mark.parametrize("layer", ["fc5", "conv3"])
def test_gradient_rule_and_the_plain_transpose_are_the_tape_bit_for_bit(layer):
    """One way to multiply by W^T: the gradient rule, the modified-gradient methods and the LRP rules
    (``transpose`` with KEEP) all run the tape's op, whatever the number of rows."""
    import tensorflow as tf
    from native_test_models import cifar_net_logits
    analyzer = keras_xai.create_analyzer("gradient", cifar_net_logits(seed=3))
    step = analyzer._model.steps[analyzer._model.layer_steps[layer]]
    rng = np.random.default_rng(8)
    shape = analyzer._model.steps[step.inputs[0]].output_shape[1:]
    x = tf.constant(rng.normal(size=(20, *shape)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = step.operation.forward([x])
    relevance = tf.constant(rng.normal(size=output.shape), tf.float32)
    expected = tape.gradient(output, x, output_gradients=relevance).numpy()
    (exact,) = rules.GradientRule()(step, [x], output, relevance)
    (transposed,) = step.operation.transpose(relevance, [x], KEEP)
    np.testing.assert_array_equal(exact.numpy(), expected)
    np.testing.assert_array_equal(transposed.numpy(), expected)


@pytest.mark.parametrize("pool, strides, padding", [(2, 2, "valid"), (2, 2, "same"), (3, 2, "same"), (3, 1, "valid")])
def test_max_pooling_from_shared_maxima_equals_max_pool_grad(pool, strides, padding):
    """The gradient rule's shared state at max pooling (the maxima, found once per sample) gives
    MaxPoolGrad's numbers bit for bit: tied windows (ReLU zeros, rounded values), overlapping windows."""
    import tensorflow as tf
    from keras_xai.operations import MaxPoolingOperation
    rng = np.random.default_rng(7)
    x = np.maximum(rng.normal(size=(3, 9, 9, 4)), 0).astype(np.float32)
    x[1] = np.round(x[1])  # ties between non-zero values
    x[2] = 0  # every window tied
    operation = MaxPoolingOperation((pool, pool), (strides, strides), padding)
    x = tf.constant(x)
    output = operation.forward([x])
    rows = tf.constant([0, 0, 1, 1, 1, 2])  # several vectors per sample, as propagate_from sends them
    cotangent = tf.constant(rng.normal(size=(6, *output.shape[1:])).astype(np.float32))
    expected = operation.vjp([tf.gather(x, rows)], tf.gather(output, rows), cotangent)[0]
    step = Step(1, "pool", None, Kind.MAX_POOLING, operation, (0,), tuple(output.shape))

    def routed(x, cotangent):
        shared = tf.gather(rules.GradientRule().shared_state(step, [x], output), rows)
        return rules.GradientRule()(step, [tf.gather(x, rows)], tf.gather(output, rows), cotangent,
                                    rules.Context(shared=shared))[0]
    np.testing.assert_array_equal(routed(x, cotangent).numpy(), expected.numpy())
    np.testing.assert_array_equal(tf.function(routed)(x, cotangent).numpy(), expected.numpy())  # compiled
    relu = Step(1, "relu", None, Kind.ACTIVATION, None, (0,), tuple(output.shape))
    assert rules.GradientRule().shared_state(relu, [x], output) is None


def test_absolute_weights_are_the_weights_of_sums_and_averages_and_abs_w_otherwise():
    """Modifier ABSOLUTE (DeepLIFT's |W| products): unchanged where the weights are non-negative
    (Add, average pooling with either padding, global average pooling), |W| for Dense and Conv2D."""
    import tensorflow as tf
    from keras_xai import operations as ops
    from keras_xai.modifiers import ABSOLUTE, KEEP
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, 5, 5, 3)))
    for operation in (ops.SumOperation(), ops.AveragePoolingOperation((2, 2), (2, 2), "valid"),
                      ops.AveragePoolingOperation((2, 2), (2, 2), "same"), ops.GlobalAveragePoolingOperation(False)):
        inputs = [x, x] if isinstance(operation, ops.SumOperation) else [x]
        assert operation.supports(ABSOLUTE)
        z = operation.forward(inputs, KEEP)
        np.testing.assert_array_equal(operation.forward(inputs, ABSOLUTE).numpy(), z.numpy())
        cotangent = tf.constant(rng.normal(size=z.shape))
        for got, expected in zip(operation.transpose(cotangent, inputs, ABSOLUTE),
                                 operation.transpose(cotangent, inputs, KEEP)):
            np.testing.assert_array_equal(got.numpy(), expected.numpy())
    kernel = tf.Variable(rng.normal(size=(3, 4)))
    dense = ops.DenseOperation(kernel, None, tf.float64)
    flat = tf.constant(rng.normal(size=(2, 3)))
    np.testing.assert_allclose(dense.forward([flat], ABSOLUTE, None).numpy(), flat.numpy() @ np.abs(kernel.numpy()))
