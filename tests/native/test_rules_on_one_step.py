"""Each rule called on one step, without a Keras model or the engine (zennit's single-module tests),
against its NumPy float64 equation (``numpy_rules.py``), on every linear operation: Dense and Conv2D,
and the layers whose weights are implicit (BatchNorm's scales, Add's identity, average pooling's 1/n),
where the rules' weight modifiers act on those implicit weights."""
import numpy as np
import pytest
import tensorflow as tf

from keras_xai import modifiers, operations as ops, rules
from keras_xai.canonize import Step
from keras_xai.kinds import Kind
from numpy_rules import CASES, conv_matrix, pool_matrix

SEEDS = [0, 1, 2]


def _dense(rng):
    W, b = rng.normal(size=(5, 4)), rng.normal(scale=0.5, size=4)
    operation = ops.DenseOperation(tf.Variable(W), tf.Variable(b), tf.float64)
    return Kind.DENSE, operation, [(5,)], W, b


def _conv(rng, padding):
    kernel, b = rng.normal(size=(3, 3, 2, 3)), rng.normal(scale=0.5, size=3)
    operation = ops.Conv2DOperation(tf.Variable(kernel), tf.Variable(b), (1, 1), padding, (1, 1), tf.float64)
    positions = 25 if padding == "same" else 9
    return Kind.CONV2D, operation, [(5, 5, 2)], conv_matrix(kernel, 5, 5, padding), np.tile(b, positions)


def _batch_norm(rng):
    scale, offset = rng.normal(size=3), rng.normal(scale=0.5, size=3)  # negative scales too
    operation = ops.AffineOperation(lambda: tf.constant(scale), lambda: tf.constant(offset))
    return Kind.BATCH_NORM, operation, [(2, 2, 3)], np.diag(np.tile(scale, 4)), np.tile(offset, 4)


def _add(rng):
    identity = np.eye(6)
    return Kind.ADD, ops.SumOperation(), [(6,), (6,)], np.vstack([identity, identity]), np.zeros(6)


def _average_pooling(rng, padding):
    operation = ops.AveragePoolingOperation((2, 2), (2, 2), padding)  # 'same' on 5x5: windows of 4, 2 and 1
    W = pool_matrix(5, 5, 2, 2, 2, padding)
    return Kind.AVERAGE_POOLING, operation, [(5, 5, 2)], W, np.zeros(W.shape[1])


def _global_average_pooling(rng):
    W = pool_matrix(3, 3, 2, 3, 3, "valid")
    return Kind.GLOBAL_AVERAGE_POOLING, ops.GlobalAveragePoolingOperation(False), [(3, 3, 2)], W, np.zeros(2)


OPERATIONS = {
    "dense": _dense,
    "conv_valid": lambda rng: _conv(rng, "valid"),
    "conv_same": lambda rng: _conv(rng, "same"),
    "batch_norm": _batch_norm,
    "add": _add,
    "average_pooling_valid": lambda rng: _average_pooling(rng, "valid"),
    "average_pooling_same": lambda rng: _average_pooling(rng, "same"),
    "global_average_pooling": _global_average_pooling,
}

#: Rules whose weights have degree != 1 (w^2, ones): 'same' average pooling's border windows hold
#: fewer inputs, so the modified layer is not the plain one times a number.
CANNOT_APPLY = {("w_square", "average_pooling_same"), ("flat", "average_pooling_same")}


def _relevance(rule, kind, operation, shapes, x, R, nonnegative):
    """The rule called directly on the step: inputs as tensors, the result flattened per sample."""
    inputs = [tf.constant(part.reshape(len(x), *shape)) for part, shape in zip(_split(x, shapes), shapes)]
    output = operation.forward(inputs)
    step = Step(1, "layer", None, kind, operation, tuple(range(len(shapes))), tuple(output.shape),
                inputs_nonnegative=(nonnegative,) * len(shapes))
    assert rule.unsupported_reason(step) is None
    relevance = rule(step, inputs, output, tf.constant(R.reshape(output.shape)))
    return np.concatenate([r.numpy().reshape(len(x), -1) for r in relevance], axis=1)


def _split(x, shapes):
    sizes = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]
    return np.split(x, sizes, axis=1)


@pytest.mark.parametrize("operation_name", list(OPERATIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_rule_on_one_step_matches_numpy_equation(case, operation_name):
    rule, equation = CASES[case]
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        kind, operation, shapes, W, b = OPERATIONS[operation_name](rng)
        if (case, operation_name) in CANNOT_APPLY:
            step = Step(1, "layer", None, kind, operation, (0,), ())
            assert "cannot provide" in rule.unsupported_reason(step)
            return
        x = rng.normal(size=(3, W.shape[0]))
        R = rng.normal(size=(3, W.shape[1]))
        # Signed inputs, and non-negative ones declared so (the rules then skip the negative part).
        for inputs, nonnegative in ((np.abs(x), False) if case == "z_plus_fast" else (x, False), (np.abs(x), True)):
            expected = np.stack([equation(xi, W, b, Ri) for xi, Ri in zip(inputs, R)])
            ours = _relevance(rule, kind, operation, shapes, inputs, R, nonnegative)
            np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{case} on {operation_name}, seed {seed}, non-negative {nonnegative}")


BUILT_IN = [modifiers.KEEP, modifiers.POSITIVE, modifiers.NEGATIVE, modifiers.ABSOLUTE, modifiers.SQUARE,
            modifiers.ONES, modifiers.plus_positive_part(0.25)]


@pytest.mark.parametrize("modifier", BUILT_IN, ids=str)
def test_modifier_declares_its_value_at_one_and_its_degree(modifier):
    """``at_one`` is f(1) and ``degree`` the positive homogeneity f(c w) = c**d f(w) that the layers
    with implicit weights rely on."""
    w = tf.constant(np.random.default_rng(0).normal(size=50))
    assert float(modifier(tf.constant(1.0, tf.float64))) == modifier.at_one
    for c in (0.5, 3.0):
        np.testing.assert_allclose(modifier(c * w).numpy(), c**modifier.degree * modifier(w).numpy(), rtol=1e-12)


#: A modifier of our own, with no degree of homogeneity.
SHIFTED = modifiers.WeightModifier("w + 1", lambda w: w + 1, degree=None, at_one=2.0)


class ShiftedZRule(rules.Rule):
    """A rule of our own: the z-rule on W + 1 (bias unchanged)."""

    weight_modifiers = (SHIFTED,)

    def __call__(self, step, inputs, output, relevance, context=rules.NO_CONTEXT):
        z = step.operation.forward(inputs, SHIFTED)
        shares = step.operation.transpose(rules.safe_divide(relevance, z), inputs, SHIFTED)
        return [x * share for x, share in zip(inputs, shares)]


def test_a_new_modifier_works_on_explicit_weights_and_is_refused_where_weights_are_implicit():
    rng = np.random.default_rng(4)
    kind, dense, shapes, W, b = _dense(rng)
    x, R = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    ours = _relevance(ShiftedZRule(), kind, dense, shapes, x, R, False)
    expected = np.stack([xi * ((W + 1) @ (Ri / (xi @ (W + 1) + b))) for xi, Ri in zip(x, R)])
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    pooling = Step(1, "pool", None, Kind.AVERAGE_POOLING, ops.AveragePoolingOperation((2, 2), (2, 2), "valid"),
                   (0,), ())
    assert ShiftedZRule().unsupported_reason(pooling) == (
        "ShiftedZRule needs weights ['w + 1'], which this layer cannot provide")
