"""RectGrad (Kim et al. 2019) in the native engine: against a NumPy float64 version of the rule on
small dense and conv nets, against Guided Backprop with the threshold fixed at 0, and against
engine="innvestigate" (worker process).

The NumPy nets are "dense-ified": every Dense/Conv2D layer becomes an explicit matrix built with
loops over the kernel, so the reference shares no code with the engine.
"""
import numpy as np
import pytest
from tensorflow import keras

import keras_xai
from keras_xai.canonize import UnsupportedLayerError
from keras_xai.rect_grad import percentile_position
from native_test_models import TINY_MODELS, randomize

L = keras.layers
SEEDS = (0, 1, 2)


# --- small nets and their NumPy float64 versions -----------------------------------------------

def small_dense(seed: int, bias_scale: float = 0.1) -> keras.Model:
    inputs = keras.Input((8,), name="input")
    x = L.Dense(16, activation="relu", name="fc1")(inputs)
    x = L.Dense(12, name="fc2")(x)
    x = L.Activation("relu", name="relu2")(x)
    outputs = L.Dense(5, name="fc3")(x)
    return randomize(keras.Model(inputs, outputs, name="small_dense"), seed, bias_scale)


def small_conv(seed: int, bias_scale: float = 0.1) -> keras.Model:
    inputs = keras.Input((7, 7, 3), name="input")
    x = L.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = L.Conv2D(5, 3, name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(4, name="fc")(x)
    return randomize(keras.Model(inputs, outputs, name="small_conv"), seed, bias_scale)


def conv_matrix(kernel: np.ndarray, in_shape: tuple) -> np.ndarray:
    """A 'valid', stride-1 convolution as a (inputs, outputs) matrix over row-major (h, w, c) indices."""
    kh, kw, cin, cout = kernel.shape
    height, width, _ = in_shape
    out_h, out_w = height - kh + 1, width - kw + 1
    matrix = np.zeros((height * width * cin, out_h * out_w * cout))
    for oh in range(out_h):
        for ow in range(out_w):
            for co in range(cout):
                column = (oh * out_w + ow) * cout + co
                for dh in range(kh):
                    for dw in range(kw):
                        for ci in range(cin):
                            row = ((oh + dh) * width + (ow + dw)) * cin + ci
                            matrix[row, column] = kernel[dh, dw, ci, co]
    return matrix


def linear_layers(model: keras.Model) -> list:
    """[(matrix, bias)] of the Dense/Conv2D layers in order, float64 (a ReLU follows all but the last)."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            layers.append((layer.kernel.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64)))
        elif isinstance(layer, L.Conv2D):
            bias = np.tile(layer.bias.numpy().astype(np.float64), int(np.prod(layer.output.shape[1:3])))
            layers.append((conv_matrix(layer.kernel.numpy().astype(np.float64), layer.input.shape[1:]), bias))
    return layers


def forward(layers: list, x: np.ndarray) -> list:
    """Inputs of every linear layer, then the logits (float64, flattened per sample)."""
    values = [x.reshape(len(x), -1).astype(np.float64)]
    for position, (matrix, bias) in enumerate(layers):
        z = values[-1] @ matrix + bias
        values.append(z if position == len(layers) - 1 else np.maximum(z, 0))
    return values


def tf_contrib_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-th percentile as tf.contrib.distributions.percentile(interpolation='nearest'):
    the values sorted in descending order, the one at round((n - 1) * (1 - q / 100))."""
    n = values.shape[1]
    position = int(np.round((n - 1) * (1.0 - q / 100.0)))
    return -np.sort(-values, axis=1)[:, position:position + 1]


def rect_grad_numpy(model, x, units, q=None, threshold=None) -> np.ndarray:
    """Kim et al.'s rule R_in = [a R > tau] R at every ReLU, started from 1 at the selected logit."""
    layers = linear_layers(model)
    values = forward(layers, x)
    relevance = np.eye(layers[-1][0].shape[1])[units]
    for position in range(len(layers) - 1, -1, -1):
        relevance = relevance @ layers[position][0].T  # at the input of this layer
        if position > 0:  # that input is a ReLU output
            importance = values[position] * relevance
            tau = tf_contrib_percentile(importance, q) if threshold is None else threshold
            relevance = np.where(importance > tau, relevance, 0.0)
    return relevance.reshape(x.shape)


def _inputs(model, seed, batch=4):
    return np.random.default_rng(seed).normal(size=(batch, *model.inputs[0].shape[1:]))


# --- the percentile convention ---------------------------------------------------------------------

def test_percentile_position_is_tf_contrib_nearest():
    # Away from half-way ranks it is NumPy's "nearest" percentile ...
    rng = np.random.default_rng(0)
    for n, q in ((144, 98), (1024, 98), (100, 90), (37, 50), (12, 75), (6, 80)):
        values = rng.normal(size=(3, n))
        ours = -np.sort(-values, axis=1)[:, percentile_position(n, q)]
        np.testing.assert_array_equal(ours, np.percentile(values, q, axis=1, method="nearest"))
    # ... but at an exact half-way rank the two round differently: for n = 6, q = 50 NumPy (and
    # the innvestigate engine) take ascending rank round(2.5) = 2, tf.contrib descending position
    # round(2.5) = 2, i.e. ascending rank 3.
    values = np.arange(6.0)[None]
    assert values[0, ::-1][percentile_position(6, 50)] == 3.0
    assert np.percentile(values, 50, axis=1, method="nearest")[0] == 2.0


# --- against NumPy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [small_dense, small_conv], ids=["dense", "conv"])
@pytest.mark.parametrize("q", [30.0, 70.0, 98.0])
def test_rect_grad_matches_numpy(build, q):
    model = build(0)
    analyzer = keras_xai.create_analyzer("rect_grad", model, percentile=q, dtype="float64")
    for seed in SEEDS:
        randomize(model, seed + 100)  # new weights, same analyzer: it reads them live
        x = _inputs(model, seed + 10)
        units = np.arange(len(x)) % model.outputs[0].shape[-1]
        ours = analyzer.analyze(x, neuron_selection=units)
        expected = rect_grad_numpy(model, x, units, q=q)
        if q < 90:  # with 12-16 unit layers, q = 98 thresholds at the maximum and blocks everything
            assert np.abs(expected).max() > 0
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_fixed_threshold_matches_numpy():
    model = small_conv(0)
    for threshold in (-0.05, 0.0, 0.02):
        analyzer = keras_xai.create_analyzer("rect_grad", model, threshold=threshold, dtype="float64")
        for seed in SEEDS:
            randomize(model, seed + 200)
            x = _inputs(model, seed)
            ours = analyzer.analyze(x, neuron_selection=1)
            expected = rect_grad_numpy(model, x, np.ones(len(x), int), threshold=threshold)
            assert np.abs(expected).max() > 0
            np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_negative_threshold_passes_inactive_units():
    """The mask replaces the ReLU derivative (Kim et al.'s code): with tau < 0 a unit with a = 0
    (importance 0 > tau) passes the signal, so the map differs from the masked gradient."""
    model = small_dense(4)
    x = _inputs(model, 4)
    low = keras_xai.create_analyzer("rect_grad", model, percentile=0.0).relevances(x, neuron_selection=0)
    gradient = keras_xai.create_analyzer("gradient", model).relevances(x, neuron_selection=0)
    # q = 0 thresholds at the minimum: everything but the minimum passes, inactive units included.
    assert not np.allclose(low["input"], gradient["input"])
    assert (low["fc1"][model.get_layer("fc1")(x.astype(np.float32)).numpy() == 0] != 0).any()


# --- threshold 0 is Guided Backprop --------------------------------------------------------------------

@pytest.mark.parametrize("model_name", list(TINY_MODELS))
def test_threshold_zero_equals_guided_backprop(model_name):
    model = TINY_MODELS[model_name](seed=5)
    x = _inputs(model, 5, batch=6).astype(np.float32)
    rect = keras_xai.create_analyzer("rect_grad", model, threshold=0.0)
    guided = keras_xai.create_analyzer("guided_backprop", model)
    # Same starting vector at the output layer: every layer identical, bit for bit.
    output_layer = model.layers[-1].name
    vector = np.random.default_rng(1).normal(size=(len(x), *model.outputs[0].shape[1:])).astype(np.float32)
    ours, theirs = rect.propagate_from(x, output_layer, vector), guided.propagate_from(x, output_layer, vector)
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert np.abs(ours["input"]).max() > 0
    # analyze: Guided Backprop starts from the logit value, RectGrad from 1; for a positive logit
    # the ReLUs commute with the scale.
    logits = model(x).numpy().reshape(len(x), -1)
    unit = np.argmax(logits, axis=1)
    positive = logits[np.arange(len(x)), unit] > 0
    assert positive.any()
    scaled = rect.analyze(x) * logits[np.arange(len(x)), unit].reshape(-1, *[1] * (x.ndim - 1))
    np.testing.assert_allclose(scaled[positive], guided.analyze(x)[positive], rtol=1e-5,
                               atol=1e-6 * np.abs(scaled).max())


def test_default_percentile_differs_from_guided_backprop(vgg_style):
    x = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    rect = keras_xai.create_analyzer("rect_grad", vgg_style).analyze(x)
    zero = keras_xai.create_analyzer("rect_grad", vgg_style, threshold=0.0).analyze(x)
    assert np.abs(rect).max() > 0
    # Only the top 2% of each layer pass: a sparser map than Guided Backprop's.
    assert (rect != 0).mean() < (zero != 0).mean()


# --- API and errors --------------------------------------------------------------------------------

def test_rect_grad_is_listed():
    info = {i.name: i for i in keras_xai.list_analyzers()}["rect_grad"]
    assert info.family == "gradient" and info.reduction == "max_abs"
    assert info.parameters == {"percentile": 98.0, "threshold": None}


def test_rect_grad_errors():
    model = small_dense(0)
    with pytest.raises(ValueError, match="percentile"):
        keras_xai.create_analyzer("rect_grad", model, percentile=101)
    with pytest.raises(ValueError, match=r"percentile in \[0, 100\] or a fixed threshold"):
        keras_xai.create_analyzer("rect_grad", model, percentile=None)
    with pytest.raises(ValueError, match="finite"):
        keras_xai.create_analyzer("rect_grad", model, threshold=float("nan"))
    inputs = keras.Input((4,))
    tanh_model = keras.Model(inputs, L.Dense(2)(L.Dense(3, activation="tanh", name="hidden")(inputs)))
    with pytest.raises(UnsupportedLayerError, match="'hidden'.*tanh"):
        keras_xai.create_analyzer("rect_grad", tanh_model)


# --- against engine="innvestigate" ----------------------------------------------------------------

@pytest.fixture(scope="module")
def innvestigate_rect_grad(cifar_logits, vgg_style):
    """Both nets' RectGrad maps from the innvestigate worker (one worker process for all)."""
    pytest.importorskip("innvestigate")
    residual = TINY_MODELS["residual"](seed=3)
    cases = {
        "cifar": (cifar_logits, np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32), 98.0),
        "vgg": (vgg_style, np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32), 98.0),
        "residual": (residual, np.random.default_rng(2).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32), 80.0),
    }
    results = {}
    for name, (model, x, q) in cases.items():
        analyzer = keras_xai.create_analyzer("rect_grad", model, engine="innvestigate", percentile=q)
        results[name] = (model, x, q, analyzer.analyze(x, neuron_selection=[0, 3, 1]))
    return results


def _relu_sizes(model) -> list:
    sizes = []
    for layer in model.layers:
        is_relu = isinstance(layer, L.ReLU) or getattr(getattr(layer, "activation", None), "__name__", "") == "relu"
        if is_relu:
            sizes.append(int(np.prod(layer.output.shape[1:])))
    return sizes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar", "vgg", "residual"])
def test_rect_grad_matches_innvestigate_engine(innvestigate_rect_grad, name):
    model, x, q, theirs = innvestigate_rect_grad[name]
    # The worker takes the ascending "nearest" rank round(q/100 (n-1)); on these layer sizes it is
    # the same element as tf.contrib's descending position (they differ only at half-way ranks).
    for n in _relu_sizes(model):
        assert (n - 1) - int(np.round(q / 100.0 * (n - 1))) == percentile_position(n, q), n
    ours = keras_xai.create_analyzer("rect_grad", model, percentile=q).analyze(x, neuron_selection=[0, 3, 1])
    scale = np.abs(theirs).max()
    assert scale > 0
    assert np.abs(ours - theirs).max() / scale <= 1e-4
