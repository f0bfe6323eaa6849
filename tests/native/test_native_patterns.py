"""PatternNet / PatternAttribution: the fitted patterns against a NumPy float64 version of the
estimator (Sixt et al. eqs. 9, 40-41; iNNvestigate 1.x's conventions), the linear toy problem of
Kindermans et al. (2018), the backward passes against a NumPy version, saving/loading and errors."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from keras_xai.pattern import PatternsNotFittedError

L = keras.layers
METHODS = ["pattern.net", "pattern.attribution"]


# --- a small dense + conv net and its NumPy twin ----------------------------------------------------

def small_net(seed=5):
    """conv 3x3 'same' + ReLU, conv 2x2 stride 2 'valid' + ReLU, Flatten, Dense + ReLU, Dense."""
    inputs = keras.Input((7, 7, 2), name="input")
    x = L.Conv2D(3, 3, padding="same", activation="relu", name="conv_same")(inputs)
    x = L.Conv2D(4, 2, strides=2, name="conv_strided")(x)
    x = L.Activation("relu", name="relu")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(5, activation="relu", name="fc1")(x)
    outputs = L.Dense(3, name="fc2")(x)
    model = keras.Model(inputs, outputs, name="small")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, np.sqrt(2 / np.prod(kernel.shape[:-1])), kernel.shape),
                               rng.normal(0, 0.3, bias.shape)])
    fc1_kernel, fc1_bias = model.get_layer("fc1").get_weights()
    fc1_bias[4] = -100.0  # a unit that is never active: its pattern must be zero
    model.get_layer("fc1").set_weights([fc1_kernel, fc1_bias])
    return model


def patches(x, kernel_size, stride, padding):
    """(n, out_h, out_w, kh*kw*c) input patches in the order of kernel.reshape(-1, units)."""
    k = kernel_size
    if padding == "same":  # stride 1 here: k - 1 zeros, the smaller half before
        before = (k - 1) // 2
        x = np.pad(x, [(0, 0), (before, k - 1 - before), (before, k - 1 - before), (0, 0)])
    n, h, w, c = x.shape
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    result = np.empty((n, out_h, out_w, k * k * c))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            result[:, i, j] = window.reshape(n, -1)
    return result


LAYERS = [  # name, kernel size, stride, padding (None: dense)
    ("conv_same", 3, 1, "same"), ("conv_strided", 2, 2, "valid"), ("fc1", None, None, None),
    ("fc2", None, None, None),
]


def numpy_forward(model, x):
    """Per kernel layer: (input rows X, bias-free outputs Y, outputs with bias), float64."""
    h = x.astype(np.float64)
    io = {}
    for name, size, stride, padding in LAYERS:
        kernel, bias = (w.astype(np.float64) for w in model.get_layer(name).get_weights())
        if size is None:
            h = h.reshape(len(h), -1)
            rows = h
        else:
            cols = patches(h, size, stride, padding)
            rows = cols.reshape(-1, cols.shape[-1])
        y = rows @ kernel.reshape(-1, kernel.shape[-1])
        io[name] = (rows, y, y + bias)
        out = y + bias
        if size is not None:
            out = out.reshape(*cols.shape[:3], -1)
        h = np.maximum(out, 0) if name != "fc2" else out
    return io


def numpy_patterns(model, x, pattern_type="relu", mean_y="all"):
    """Eq. 40 unit by unit, with iNNvestigate's conventions (E[y] over all samples by default)."""
    result = {}
    for name, (rows, y, pre_activation) in numpy_forward(model, x).items():
        kernel = model.get_layer(name).get_weights()[0].astype(np.float64)
        weights = kernel.reshape(-1, kernel.shape[-1])
        pattern = np.zeros_like(weights)
        for unit in range(weights.shape[1]):
            active = pre_activation[:, unit] > 0 if pattern_type == "relu" else np.ones(len(rows), bool)
            if not active.any():
                continue  # never active: zero pattern (iNNvestigate's guarded division)
            mean_x = rows[active].mean(0)
            mean_xy = (rows[active] * y[active, unit:unit + 1]).mean(0)
            mean_of_y = y[:, unit].mean() if mean_y == "all" else y[active, unit].mean()
            covariance = mean_xy - mean_x * mean_of_y
            along_weights = weights[:, unit] @ covariance
            pattern[:, unit] = covariance / (along_weights if along_weights != 0 else 1.0)  # iNNvestigate's guard
        result[name] = pattern.reshape(kernel.shape)
    return result


def numpy_eq41(model, x):
    """Eq. 41: a = cov_+[x] w / (w^T cov_+[x] w), with the covariance of the active rows."""
    result = {}
    for name, (rows, _, pre_activation) in numpy_forward(model, x).items():
        kernel = model.get_layer(name).get_weights()[0].astype(np.float64)
        weights = kernel.reshape(-1, kernel.shape[-1])
        pattern = np.zeros_like(weights)
        for unit in range(weights.shape[1]):
            active = pre_activation[:, unit] > 0
            if active.sum() < 2:
                continue
            covariance = np.cov(rows[active].T, bias=True)
            pattern[:, unit] = covariance @ weights[:, unit] / (weights[:, unit] @ covariance @ weights[:, unit])
        result[name] = pattern.reshape(kernel.shape)
    return result


@pytest.fixture(scope="module")
def model():
    return small_net()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(size=(23, 7, 7, 2))


# --- the patterns --------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern_type, mean_y", [("relu", "all"), ("relu", "active"), ("linear", "all")])
def test_streamed_patterns_equal_numpy_estimator(model, images, pattern_type, mean_y):
    analyzer = keras_xai.create_analyzer("pattern.net", model, dtype="float64")
    analyzer.fit(images, batch_size=5, pattern_type=pattern_type, mean_y=mean_y)  # 5 batches, the last of 3
    expected = numpy_patterns(model, images, pattern_type, mean_y)
    assert set(analyzer.patterns) == set(expected)
    for name, pattern in analyzer.patterns.items():
        assert pattern.shape == model.get_layer(name).kernel.shape
        np.testing.assert_allclose(pattern, expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
    if pattern_type == "relu":
        assert not analyzer.patterns["fc1"][:, 4].any() and analyzer.patterns["fc1"][:, :4].any()


def test_conditional_mean_equals_eq41_covariance_form(model, images):
    analyzer = keras_xai.create_analyzer("pattern.net", model, dtype="float64")
    analyzer.fit(images, mean_y="active")
    for name, expected in numpy_eq41(model, images).items():
        np.testing.assert_allclose(analyzer.patterns[name], expected, rtol=1e-8, atol=1e-10, err_msg=name)


def test_batching_and_iterables_give_the_same_patterns(model, images):
    one_shot = keras_xai.create_analyzer("pattern.net", model, dtype="float64").fit(images, batch_size=len(images))
    generator = ((images[i:i + 4], np.zeros(4)) for i in range(0, len(images), 4))  # (x, y) like Keras
    streamed = keras_xai.create_analyzer("pattern.net", model, dtype="float64").fit(generator, batch_size=3)
    for name in one_shot.patterns:
        np.testing.assert_allclose(streamed.patterns[name], one_shot.patterns[name], rtol=1e-11, atol=1e-14)
    assert streamed.fitted_on == one_shot.fitted_on == len(images)


def test_float32_fit_is_close_to_float64(model, images):
    exact = numpy_patterns(model, images)
    fitted = keras_xai.create_analyzer("pattern.net", model).fit(images.astype(np.float32), batch_size=8).patterns
    for name, pattern in fitted.items():
        assert np.linalg.norm(pattern - exact[name]) <= 1e-4 * np.linalg.norm(exact[name]), name


def test_mask_follows_batchnorm_and_add_to_the_relu():
    """conv -> BatchNorm -> ReLU: the unit is active where the BatchNorm output is > 0."""
    inputs = keras.Input((5, 5, 2))
    conv = L.Conv2D(3, 3, padding="same", name="conv")(inputs)
    bn = L.BatchNormalization(name="bn")(conv)
    x = L.Activation("relu")(bn)
    outputs = L.Dense(2, name="fc")(L.Flatten()(x))
    model = keras.Model(inputs, outputs)
    bn_layer = model.get_layer("bn")
    bn_layer.set_weights([np.array([1.0, -2.0, 0.5]), np.array([0.3, -0.2, 0.1]),
                          np.array([0.2, -0.1, 0.4]), np.array([1.5, 0.7, 2.0])])  # gamma < 0 flips a sign
    rng = np.random.default_rng(3)
    x_data = rng.normal(size=(9, 5, 5, 2))
    analyzer = keras_xai.create_analyzer("pattern.net", model, dtype="float64").fit(x_data)

    rows = patches(x_data, 3, 1, "same").reshape(-1, 18)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("conv").get_weights())
    y = rows @ kernel.reshape(18, 3)
    normalized = bn_layer(((y + bias).reshape(9, 5, 5, 3)).astype(np.float32)).numpy().reshape(-1, 3)
    for unit in range(3):
        active = normalized[:, unit] > 0
        covariance = (rows[active] * y[active, unit:unit + 1]).mean(0) - rows[active].mean(0) * y[:, unit].mean()
        expected = covariance / (kernel.reshape(18, 3)[:, unit] @ covariance)
        np.testing.assert_allclose(analyzer.patterns["conv"].reshape(18, 3)[:, unit], expected, rtol=1e-7)


# --- the linear toy problem of Kindermans et al. ---------------------------------------------------

def cosine(a, b):
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("pattern_type", ["relu", "linear"])
def test_patternnet_recovers_the_signal_direction_where_the_gradient_does_not(pattern_type):
    rng = np.random.default_rng(0)
    signal_direction, distractor_direction = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    n = 4000
    s, d = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    x = (s * signal_direction + d * distractor_direction + 0.02 * rng.normal(size=(n, 2))).astype(np.float32)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, L.Dense(1, use_bias=False, name="filter")(inputs))
    model.get_layer("filter").set_weights([np.array([[1.0], [-1.0]])])  # w^T a_distractor = 0, w^T a_signal = 1

    analyzer = keras_xai.create_analyzer("pattern.net", model).fit(x, pattern_type=pattern_type)
    x_test = x[:50]
    maps = analyzer.analyze(x_test, neuron_selection=0)
    outputs = model(x_test).numpy()[:, 0]
    # PatternNet's map is y * a: the signal direction, signed by the output
    pattern_cosines = [cosine(m * np.sign(y), signal_direction) for m, y in zip(maps, outputs)]
    gradients = keras_xai.create_analyzer("gradient", model).analyze(x_test, neuron_selection=0)
    gradient_cosines = [cosine(g, signal_direction) for g in gradients]
    assert min(pattern_cosines) > 0.99
    assert max(gradient_cosines) < 0.8  # the gradient is w, which also points away from the distractor
    assert cosine(analyzer.patterns["filter"][:, 0], signal_direction) > 0.99


# --- the backward passes ---------------------------------------------------------------------------

def numpy_conv_transpose(r, kernel, input_shape, stride, padding):
    """K^T r for a conv layer: scatter each output position back over its window."""
    k = kernel.shape[0]
    before = (k - 1) // 2 if padding == "same" else 0
    after = k - 1 - before if padding == "same" else 0
    n, h, w, _ = input_shape
    padded = np.zeros((n, h + before + after, w + before + after, kernel.shape[2]))
    for i in range(r.shape[1]):
        for j in range(r.shape[2]):
            contribution = np.einsum("abco,no->nabc", kernel, r[:, i, j, :])
            padded[:, i * stride:i * stride + k, j * stride:j * stride + k, :] += contribution
    return padded[:, before:before + h, before:before + w, :]


def numpy_pattern_backward(model, x, patterns, attribution, unit):
    """The PatternNet/PatternAttribution pass of the small net, from the value of ``unit``."""
    io = numpy_forward(model, x)
    kernels = {name: model.get_layer(name).get_weights()[0].astype(np.float64) for name, *_ in LAYERS}
    used = {name: patterns[name] * kernels[name] if attribution else patterns[name] for name in kernels}
    out = io["fc2"][2]
    r = np.zeros_like(out)
    r[:, unit] = out[:, unit]
    results = {"fc2": r.copy()}
    r = r @ used["fc2"].T
    results["fc1"] = r.copy()  # at fc1's output, i.e. above its fused ReLU
    r = (r * (io["fc1"][2] > 0)) @ used["fc1"].T
    pre = io["conv_strided"][2].reshape(len(x), 3, 3, 4)
    r = r.reshape(len(x), 3, 3, 4)
    results["relu"] = r.copy()
    r = r * (pre > 0)
    r = numpy_conv_transpose(r, used["conv_strided"], (len(x), 7, 7, 3), 2, "valid")
    results["conv_same"] = r.copy()
    r = r * (io["conv_same"][2].reshape(len(x), 7, 7, 3) > 0)
    results["input"] = numpy_conv_transpose(r, used["conv_same"], (len(x), 7, 7, 2), 1, "same")
    return results


@pytest.mark.parametrize("method", METHODS)
def test_backward_pass_equals_numpy(model, images, method):
    rng = np.random.default_rng(5)
    patterns = {layer.name: rng.normal(size=layer.kernel.shape) for layer in model.layers if hasattr(layer, "kernel")}
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", patterns=patterns)
    x = images[:6]
    unit = 1
    expected = numpy_pattern_backward(model, x, patterns, method == "pattern.attribution", unit)
    got = analyzer.relevances(x, neuron_selection=unit)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(analyzer.analyze(x, neuron_selection=unit), expected["input"], rtol=1e-9, atol=1e-12)
    injected = rng.normal(size=(6, 5))
    below = analyzer.propagate_from(x, "fc1", injected)
    io = numpy_forward(model, x)
    attribution = method == "pattern.attribution"
    used = {name: p * (model.get_layer(name).kernel.numpy() if attribution else 1) for name, p in patterns.items()}
    r = (injected * (io["fc1"][2] > 0)) @ used["fc1"].T  # fc1's ReLU mask, then its pattern
    r = r.reshape(6, 3, 3, 4) * (io["conv_strided"][2].reshape(6, 3, 3, 4) > 0)
    manual = numpy_conv_transpose(r, used["conv_strided"], (6, 7, 7, 3), 2, "valid")
    np.testing.assert_allclose(below["conv_same"], manual, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_with_kernels_as_patterns_it_is_value_times_gradient_on_residual_batchnorm_net(method):
    """A = W (PatternNet) or A = 1 (PatternAttribution) turns the pass into the gradient: so
    BatchNorm, Add, pooling, Concatenate and Reshape are traversed with their gradient."""
    import native_test_models

    model = native_test_models.residual_net(seed=4)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3))
    kernels = {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}
    patterns = kernels if method == "pattern.net" else {k: np.ones_like(v) for k, v in kernels.items()}
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", patterns=patterns)
    unit = 5
    x_tensor = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        selected = tf.reshape(model(x_tensor), [len(x), -1])[:, unit]
    expected = selected.numpy()[:, None, None, None] * tape.gradient(selected, x_tensor).numpy()
    np.testing.assert_allclose(analyzer.analyze(x, neuron_selection=unit), expected, rtol=1e-4, atol=1e-6)


def test_attribution_is_net_with_hadamard_patterns(model, images):
    rng = np.random.default_rng(8)
    patterns = {layer.name: rng.normal(size=layer.kernel.shape) for layer in model.layers if hasattr(layer, "kernel")}
    hadamard = {name: p * model.get_layer(name).kernel.numpy() for name, p in patterns.items()}
    attribution = keras_xai.create_analyzer("pattern.attribution", model, dtype="float64", patterns=patterns)
    net = keras_xai.create_analyzer("pattern.net", model, dtype="float64", patterns=hadamard)
    np.testing.assert_allclose(attribution.analyze(images[:4]), net.analyze(images[:4]), rtol=1e-10, atol=1e-13)


# --- state: handing over, saving, loading, no retracing -----------------------------------------------

def test_patterns_handed_over_saved_and_loaded(model, images, tmp_path):
    net = keras_xai.create_analyzer("pattern.net", model).fit(images)
    attribution = keras_xai.create_analyzer("pattern.attribution", model, patterns=net.patterns)
    written = net.save_patterns(tmp_path / "sub" / "patterns")
    assert written == tmp_path / "sub" / "patterns.npz" and written.is_file()
    assert [p.name for p in written.parent.iterdir()] == ["patterns.npz"]  # no temporary file left
    from_file = keras_xai.create_analyzer("pattern.attribution", model, patterns=str(written))
    for name, pattern in net.patterns.items():
        np.testing.assert_array_equal(from_file.patterns[name], pattern)
    np.testing.assert_array_equal(from_file.analyze(images[:3]), attribution.analyze(images[:3]))
    fresh = keras_xai.create_analyzer("pattern.net", model).load_patterns(written)
    np.testing.assert_array_equal(fresh.analyze(images[:3]), net.analyze(images[:3]))
    returned = net.patterns
    returned["fc1"][:] = 0  # a copy: the analyzer's patterns are unchanged
    assert net.patterns["fc1"].any()


def test_new_patterns_do_not_retrace(model, images):
    analyzer = keras_xai.create_analyzer("pattern.net", model).fit(images[:10])
    first = analyzer.analyze(images[:3])
    analyzer.fit(images[10:])
    second = analyzer.analyze(images[:3])
    analyzer.load_patterns({name: 2 * p for name, p in analyzer.patterns.items()})
    third = analyzer.analyze(images[:3])
    assert analyzer._engine._functions["input"].experimental_get_tracing_count() == 1
    assert not np.allclose(first, second)
    # doubling every pattern of the 4 kernel layers scales the map by 2**4
    np.testing.assert_allclose(third, 16 * second, rtol=1e-5, atol=1e-7)


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda a, x: a.analyze(x), lambda a, x: a.relevances(x), lambda a, x: a.propagate_from(x, "fc1", np.zeros((2, 5))),
    lambda a, x: a.save_patterns("unused.npz"),
])
def test_use_before_fit_says_to_fit_or_pass_patterns(model, images, call):
    analyzer = keras_xai.create_analyzer("pattern.attribution", model)
    assert analyzer.patterns is None
    with pytest.raises(PatternsNotFittedError, match=r"call analyzer\.fit\(x\).*patterns="):
        call(analyzer, images[:2])


def test_pattern_checks_name_the_layer_and_shapes(model, images, tmp_path):
    good = keras_xai.create_analyzer("pattern.net", model).fit(images).patterns
    shapes = r"layer 'fc1': pattern shape \(5, 36\) does not match its kernel shape \(36, 5\)"
    with pytest.raises(ValueError, match=shapes):
        keras_xai.create_analyzer("pattern.net", model, patterns={**good, "fc1": good["fc1"].T})
    missing = {k: v for k, v in good.items() if k != "conv_same"}
    with pytest.raises(ValueError, match=r"no pattern for layer\(s\) \['conv_same'\]"):
        keras_xai.create_analyzer("pattern.net", model, patterns=missing)
    with pytest.raises(ValueError, match=r"\['extra'\] that have no kernel"):
        keras_xai.create_analyzer("pattern.net", model, patterns={**good, "extra": np.zeros(3)})
    with pytest.raises(ValueError, match=r"layer 'fc2'.*finite"):
        keras_xai.create_analyzer("pattern.net", model, patterns={**good, "fc2": np.full((5, 3), np.nan)})
    np.savez(tmp_path / "other.npz", **{**good, "fc1": np.zeros((36, 4))})
    with pytest.raises(ValueError, match=r"layer 'fc1'.*\(36, 4\).*\(36, 5\).*other\.npz"):
        keras_xai.create_analyzer("pattern.net", model, patterns=tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz"):
        keras_xai.create_analyzer("pattern.net", model, patterns=str(tmp_path / "nowhere.npz"))
    with pytest.raises(TypeError, match=r"dict .* or a path"):
        keras_xai.create_analyzer("pattern.net", model, patterns=[1, 2])


def test_fit_argument_errors(model, images):
    analyzer = keras_xai.create_analyzer("pattern.net", model)
    with pytest.raises(ValueError, match=r"pattern_type must be one of \('relu', 'linear'\), got 'positive'"):
        analyzer.fit(images, pattern_type="positive")
    with pytest.raises(ValueError, match=r"mean_y"):
        analyzer.fit(images, mean_y="none")
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        analyzer.fit(images, batch_size=0)
    with pytest.raises(ValueError, match=r"no images"):
        analyzer.fit(iter([]))
    with pytest.raises(ValueError, match=r"batch 1 has shape \(2, 7, 6, 2\)"):
        analyzer.fit([images[:2], images[:2, :, :6]])
    with pytest.raises(TypeError, match=r"fit expects an array"):
        analyzer.fit(3)
    assert analyzer.patterns is None  # failed fits leave no patterns behind


def test_non_relu_networks_are_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(2)(L.Dense(3, activation="tanh", name="hidden")(inputs)))
    with pytest.raises(keras_xai.UnsupportedLayerError, match=r"'hidden'.*tanh.*pattern\.net"):
        keras_xai.create_analyzer("pattern.net", model)


# --- the benchmark script ------------------------------------------------------------------------------

def test_bench_pattern_fit_script_runs(capsys, tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_pattern_fit.py"
    spec = importlib.util.spec_from_file_location("bench_pattern_fit", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--n-images", "48", "--batch-size", "16", "--random-weights", "--method", "pattern.net",
                        "--json", str(tmp_path / "bench.json"), "--save", str(tmp_path / "patterns.npz")]) == 0
    out = capsys.readouterr().out
    assert "pattern fit on 48 images" in out and "images/s" in out
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["n_images"] == 48 and results["images_per_second"] > 0
    assert results["pattern_layers"]["fc5"] == [6272, 1024]
    with np.load(tmp_path / "patterns.npz") as stored:
        assert sorted(stored.files) == sorted(results["pattern_layers"])


def test_registered_with_family_reduction_and_parameters(model):
    infos = {info.name: info for info in keras_xai.list_analyzers()}
    for name in METHODS:
        assert infos[name].family == "pattern" and infos[name].reduction == "sum"
        assert infos[name].parameters == {"patterns": None} and "native" in infos[name].engines
    with pytest.raises(TypeError, match=r"pattern\.net got unexpected parameter\(s\) \['epsilon'\]"):
        keras_xai.create_analyzer("pattern.net", model, epsilon=0.1)


def test_progress_bar_only_when_asked(model, images, capsys):
    analyzer = keras_xai.create_analyzer("pattern.net", model)
    analyzer.fit(images, batch_size=8)
    assert "fitting pattern.net patterns" not in capsys.readouterr().err
    analyzer.fit(images, batch_size=8, verbose=True)
    assert "fitting pattern.net patterns" in capsys.readouterr().err


@pytest.mark.parametrize("config", [dict(strides=2, padding="same"), dict(dilation_rate=2, padding="same"),
                                    dict(strides=(1, 2), padding="valid")])
def test_custom_kernel_operations_equal_tensorflow_gradients(config):
    """operations.Conv2DOperation.transpose_with_kernel / kernel_vjp against tf.GradientTape."""
    from keras_xai.canonize import canonicalize
    from keras_xai.graph import read_model

    inputs = keras.Input((9, 8, 3))
    model = keras.Model(inputs, L.Conv2D(4, 3, name="conv", **config)(inputs))
    # float32: TensorFlow's float64 CPU kernels refuse dilations > 1
    operation = canonicalize(read_model(model), tf.float32).steps[1].operation
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 8, 3)), tf.float32)
    other_kernel = tf.constant(rng.normal(size=(3, 3, 3, 4)), tf.float32)
    cotangent = tf.constant(rng.normal(size=(2, *model.outputs[0].shape[1:])), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, other_kernel])
        out = tf.nn.conv2d(x, other_kernel, [1, *model.layers[1].strides, 1], config["padding"].upper(),
                           dilations=[1, *model.layers[1].dilation_rate, 1])
        total = tf.reduce_sum(out * cotangent)
    transposed = tf.function(lambda: operation.transpose_with_kernel(cotangent, [x], other_kernel)[0])()
    summed = tf.function(lambda: operation.kernel_vjp([x], cotangent))()
    np.testing.assert_allclose(transposed, tape.gradient(total, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(summed, tape.gradient(total, other_kernel), rtol=1e-5, atol=1e-5)
