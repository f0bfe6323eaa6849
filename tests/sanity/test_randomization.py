import numpy as np
import pytest

from architectures.models import cifar_net
from sanity import randomization


@pytest.fixture(scope="module")
def model():
    net = cifar_net(input_shape=(12, 12, 1))
    rng = np.random.default_rng(0)
    net.set_weights([rng.standard_normal(w.shape).astype("float32") for w in net.get_weights()])
    return net


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


def test_cascading_is_cumulative_from_the_top(model):
    original = [w.copy() for w in model.get_weights()]
    steps = randomization.CASCADING_STEPS["cifar_net"]
    results = list(randomization.randomize_cascading(model, steps, seed=1))
    assert [step for step, _ in results] == steps
    for index, (step, randomized) in enumerate(results):
        changed = {layer.name for layer in model.layers
                   if layer.weights and not same(layer, randomized.get_layer(layer.name))}
        assert changed == set(steps[: index + 1])
    # The user's model is untouched.
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights()))
    # Earlier copies are not changed by later steps.
    assert same(results[0][1].get_layer("fc5"), model.get_layer("fc5"))


def test_fresh_weights_follow_the_keras_initializers(model):
    _, randomized = next(randomization.randomize_cascading(model, ["fc5"], seed=3))
    kernel, bias = randomized.get_layer("fc5").get_weights()
    limit = np.sqrt(6 / (kernel.shape[0] + kernel.shape[1]))  # Glorot uniform
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.95 * limit
    assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not bias.any()  # biases start at zero


def test_seeded_and_reproducible(model):
    a = next(randomization.randomize_cascading(model, ["conv4"], seed=7))[1]
    b = next(randomization.randomize_cascading(model, ["conv4"], seed=7))[1]
    c = next(randomization.randomize_cascading(model, ["conv4"], seed=8))[1]
    assert same(a, b) and not same(a.get_layer("conv4"), c.get_layer("conv4"))


def test_working_copy_mode_reuses_one_private_model(model):
    models = [m for _, m in randomization.randomize_cascading(model, ["fc6", "fc5"], fresh_copies=False)]
    assert models[0] is models[1] and models[0] is not model


def test_independent_randomizes_one_layer(model):
    for step, copy in randomization.randomize_independent(model, ["conv2", "fc5"], seed=0):
        changed = {l.name for l in model.layers if l.weights and not same(l, copy.get_layer(l.name))}
        assert changed == {step}


def test_a_tf_keras_model_is_randomized_on_tf_keras_copies():
    """tf-keras next to Keras 3 (today's stack; skipped without tf-keras): its own initializers, its own copies."""
    tf_keras = pytest.importorskip("tf_keras")
    x = tf_keras.Input((4,))
    net = tf_keras.Model(x, tf_keras.layers.Dense(2, name="fc")(tf_keras.layers.Dense(3, name="hidden")(x)))
    original = [w.copy() for w in net.get_weights()]
    [(_, randomized)] = randomization.randomize_cascading(net, ["fc"], seed=0)
    assert isinstance(randomized, tf_keras.Model) and randomized is not net
    assert not same(randomized.get_layer("fc"), net.get_layer("fc"))
    assert same(randomized.get_layer("hidden"), net.get_layer("hidden"))
    assert all(np.array_equal(a, b) for a, b in zip(original, net.get_weights()))


def test_unknown_layer(model):
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        list(randomization.randomize_cascading(model, ["conv9"]))


def test_resnet_block_prefixes():
    from architectures.models import resnet50

    net = resnet50(weights=None)
    for name in ("conv5_block3_3_bn", "conv5_block1_3_bn"):  # BatchNorm starts at its init values
        layer = net.get_layer(name)
        layer.set_weights([w + 0.5 for w in layer.get_weights()])
    _, randomized = next(randomization.randomize_cascading(net, ["conv5_block2_"], seed=0))
    changed = {l.name for l in net.layers if l.weights and not same(l, randomized.get_layer(l.name))}
    assert "conv5_block2_1_conv" in changed and "conv5_block3_3_bn" in changed and "predictions" in changed
    assert not any(name.startswith(("conv5_block1_", "conv4_")) for name in changed)
