"""propagate_from (the CSC injection), relevances at every layer, and neuron selection."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

import keras_xai
from native_test_models import TINY_MODELS, cifar_net_logits, params_for


def tape_vjp(model, layer_name, x, v):
    """The vector-Jacobian product of a layer's output with v, by tf.GradientTape."""
    submodel = keras.Model(model.inputs, model.get_layer(layer_name).output)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = submodel(x)
    return tape.gradient(out, x, output_gradients=tf.constant(v, out.dtype)).numpy()


@pytest.fixture(scope="module")
def cifar():
    model = cifar_net_logits(seed=3)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    return model, x


@pytest.mark.parametrize("layer", ["fc6", "fc5", "relu4", "conv4", "conv3", "pool2", "conv2"])
def test_gradient_injection_is_the_tape_vjp(cifar, layer):
    model, x = cifar
    shape = model.get_layer(layer).output.shape[1:]
    v = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    analyzer = keras_xai.create_analyzer("gradient", model)
    propagated = analyzer.propagate_from(x, layer, v)
    np.testing.assert_allclose(propagated["input"], tape_vjp(model, layer, x, v), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(propagated[layer], v)
    assert "fc6" not in propagated or layer == "fc6"  # only the layers below the injection


@pytest.mark.parametrize("model_name, layer", [("residual", "concat"), ("residual", "add_relu"),
                                               ("residual", "fc_last_axis"), ("pooling", "gap")])
def test_gradient_injection_is_the_tape_vjp_on_branching_models(model_name, layer):
    model = TINY_MODELS[model_name]()
    x = np.random.default_rng(1).normal(size=(3, *model.inputs[0].shape[1:]))
    shape = model.get_layer(layer).output.shape[1:]
    v = np.random.default_rng(2).normal(size=(3, *shape))
    float64 = keras_xai.create_analyzer("gradient", model, dtype="float64").propagate_from(x, layer, v)["input"]
    # Keras computes the tape VJP in float32; the float64 engine agrees up to float32 rounding...
    expected = tape_vjp(model, layer, x.astype(np.float32), v.astype(np.float32))
    np.testing.assert_allclose(float64, expected, atol=1e-5)
    # ...and the float32 engine runs the very ops the tape runs.
    float32 = keras_xai.create_analyzer("gradient", model).propagate_from(x.astype(np.float32), layer, v)["input"]
    np.testing.assert_allclose(float32, expected, atol=1e-6, rtol=0)


def _float64_pooling_net():
    L = keras.layers
    return keras.Sequential([
        L.InputLayer(input_shape=(8, 8, 3), dtype="float64", name="input"),
        L.Conv2D(4, 3, padding="same", activation="relu", dtype="float64", name="conv1"),
        L.MaxPooling2D(2, dtype="float64", name="pool"),
        L.Conv2D(5, 3, dtype="float64", name="conv2"),
        L.BatchNormalization(dtype="float64", name="bn"),
        L.Activation("relu", dtype="float64", name="relu"),
        L.Flatten(dtype="float64", name="flatten"),
        L.Dense(3, dtype="float64", name="fc"),
    ])


def test_float64_gradient_injection_equals_the_float64_tape_exactly():
    model = _float64_pooling_net()
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
    analyzer = keras_xai.create_analyzer("gradient", model, dtype="float64")
    for layer in ("fc", "relu", "conv2", "pool"):
        v = np.random.default_rng(1).normal(size=(4, *model.get_layer(layer).output.shape[1:]))
        np.testing.assert_array_equal(analyzer.propagate_from(x, layer, v)["input"], tape_vjp(model, layer, x, v))


def test_k_vectors_per_sample_gradient_equals_the_tape_exactly_with_the_maxima_found_once():
    """With k vectors per sample, max pooling routes by the maxima found once per sample
    (MaxPoolGradWithArgmax in the compiled pass, no MaxPoolGrad); still the tape's VJP bit for bit,
    ReLU zeros (tied windows) included."""
    model = _float64_pooling_net()
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
    analyzer = keras_xai.create_analyzer("gradient", model, dtype="float64")
    k = 3
    for layer in ("fc", "relu", "pool"):
        v = np.random.default_rng(1).normal(size=(4 * k, *model.get_layer(layer).output.shape[1:]))
        np.testing.assert_array_equal(analyzer.propagate_from(x, layer, v)["input"],
                                      tape_vjp(model, layer, np.repeat(x, k, axis=0), v), err_msg=layer)
    functions = [f for key, f in analyzer._engine._functions.items() if key[0] == "inject"]
    assert functions
    for function in functions:
        ops = {op.type for op in function.get_concrete_function().graph.get_operations()}
        assert "MaxPoolGradWithArgmax" in ops and "MaxPoolGrad" not in ops


@pytest.mark.parametrize("layer", ["fc6", "fc5", "conv4", "conv3", "conv2"])
def test_lrp_z_injection_conserves_the_injected_sum_without_biases(cifar, layer):
    _, x = cifar
    model = cifar_net_logits(seed=5)
    for weights in model.weights:
        if "bias" in weights.name:
            weights.assign(tf.zeros_like(weights))
    shape = model.get_layer(layer).output.shape[1:]
    v = np.random.default_rng(4).normal(size=(2, *shape))
    analyzer = keras_xai.create_analyzer("lrp.z", model, dtype="float64")
    propagated = analyzer.propagate_from(x, layer, v)
    injected = v.reshape(2, -1).sum(1)
    for name in ("input", "conv1", "relu1"):
        np.testing.assert_allclose(propagated[name].reshape(2, -1).sum(1), injected, rtol=1e-8)


def test_relevances_report_every_layer_and_start_from_the_selected_logit(cifar):
    model, x = cifar
    analyzer = keras_xai.create_analyzer("lrp.epsilon", model)
    relevances = analyzer.relevances(x, neuron_selection=[2, 7])
    assert list(relevances)[:3] == ["input", "conv1", "relu1"]
    assert set(relevances) == {layer.name for layer in model.layers} | {"input"}
    for name, value in relevances.items():
        assert value.shape == (2, *model.get_layer(name).output.shape[1:]) if name != "input" else x.shape
    logits = model(x).numpy()
    expected = np.zeros_like(logits)
    expected[0, 2], expected[1, 7] = logits[0, 2], logits[1, 7]
    np.testing.assert_array_equal(relevances["fc6"], expected)
    np.testing.assert_array_equal(relevances["dropout6"], relevances["relu5"])
    np.testing.assert_array_equal(relevances["input"], analyzer.analyze(x, neuron_selection=[2, 7]))


def test_neuron_selection_forms_agree(cifar):
    model, x = cifar
    analyzer = keras_xai.create_analyzer("lrp.alpha_2_beta_1", model)
    per_sample = analyzer.analyze(x, neuron_selection=np.array([4, 1]))
    np.testing.assert_array_equal(per_sample[0], analyzer.analyze(x, neuron_selection=4)[0])
    np.testing.assert_array_equal(per_sample[1], analyzer.analyze(x, neuron_selection=1)[1])
    best = model(x).numpy().argmax(1)
    np.testing.assert_array_equal(analyzer.analyze(x), analyzer.analyze(x, neuron_selection=best))


def test_one_trace_serves_every_batch_size(cifar):
    model, x = cifar
    analyzer = keras_xai.create_analyzer("lrp.z_plus", model)
    both = analyzer.analyze(x)
    np.testing.assert_allclose(analyzer.analyze(x[1:]), both[1:], rtol=1e-5, atol=1e-9)
    assert analyzer._engine._functions["input"].experimental_get_tracing_count() == 1


def test_float64_and_float32_agree(cifar):
    model, x = cifar
    for method in ("lrp.alpha_2_beta_1", "deep_taylor", "lrp.epsilon"):
        ours32 = keras_xai.create_analyzer(method, model).analyze(x)
        ours64 = keras_xai.create_analyzer(method, model, dtype="float64").analyze(x)
        assert ours64.dtype == np.float64
        assert np.abs(ours32 - ours64).max() <= 1e-4 * np.abs(ours64).max()


def test_shared_layer_and_shared_input():
    """A layer applied twice and an input feeding two branches (gradient = tape VJP)."""
    inputs = keras.Input((4,), name="input")
    shared = keras.layers.Dense(4, activation="relu", name="shared")
    first = shared(inputs)
    second = shared(keras.layers.Dense(4, name="mix")(inputs))
    merged = keras.layers.Add(name="add")([first, second])
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(merged))
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    analyzer = keras_xai.create_analyzer("gradient", model)
    assert "shared" in analyzer.layer_names and "shared:1" in analyzer.layer_names
    propagated = analyzer.propagate_from(x, "out", np.eye(2, dtype=np.float32)[[0, 1, 0]])
    expected = tape_vjp(model, "out", x, np.eye(2, dtype=np.float32)[[0, 1, 0]])
    np.testing.assert_allclose(propagated["input"], expected, atol=1e-6)
    lrp = keras_xai.create_analyzer("lrp.z", model, dtype="float64")
    assert np.isfinite(lrp.analyze(x)).all()


#: Every native method whose result does not depend on random draws (SmoothGrad draws noise per row).
DETERMINISTIC_NATIVE = [info.name for info in keras_xai.list_analyzers()
                        if "native" in info.engines and info.name != "smoothgrad"]


@pytest.mark.parametrize("method", DETERMINISTIC_NATIVE)
@pytest.mark.parametrize("model_name, layer", [("residual", "concat"), ("batchnorm", None), ("pooling", None)])
def test_k_vectors_per_sample_equal_the_repeated_batch(method, model_name, layer):
    """propagate_from with k vectors per sample (one forward pass per sample) gives what repeating
    every sample k times gives, row for row, at every layer."""
    model = TINY_MODELS[model_name]()
    layer = layer or model.layers[-1].name
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)
    params = params_for(method)
    if method.startswith("deep_lift"):
        params["reference"] = rng.normal(size=x.shape).astype(np.float32)  # one reference per sample
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", **params)
    if method.startswith("pattern"):
        analyzer.fit(rng.normal(size=(16, *model.inputs[0].shape[1:])))
    k = 4
    v = rng.normal(size=(3 * k, *model.get_layer(layer).output.shape[1:]))
    grouped = analyzer.propagate_from(x, layer, v)
    if method.startswith("deep_lift"):  # the repeated batch needs the repeated references
        analyzer = keras_xai.create_analyzer(method, model, dtype="float64",
                                             **dict(params, reference=np.repeat(params["reference"], k, axis=0)))
    repeated = analyzer.propagate_from(np.repeat(x, k, axis=0), layer, v)
    assert set(grouped) == set(repeated)
    for name, values in repeated.items():
        assert grouped[name].shape == values.shape
        np.testing.assert_allclose(grouped[name], values, rtol=1e-10, atol=1e-12 * np.abs(values).max(), err_msg=name)


@pytest.mark.parametrize("method", ["deep_lift.rescale", "deep_lift.reveal_cancel", "deep_lift.ablation"])
def test_k_vectors_per_sample_with_a_shared_reference(method):
    model = TINY_MODELS["residual"]()
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, *model.inputs[0].shape[1:]))
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", reference=0.5)
    v = rng.normal(size=(6, *model.outputs[0].shape[1:]))
    grouped = analyzer.propagate_from(x, model.layers[-1].name, v)
    repeated = analyzer.propagate_from(np.repeat(x, 3, axis=0), model.layers[-1].name, v)
    for name, values in repeated.items():
        np.testing.assert_allclose(grouped[name], values, rtol=1e-10, atol=1e-12 * np.abs(values).max(), err_msg=name)


@pytest.mark.parametrize("method", ["gradient", "lrp.alpha_1_beta_0", "deep_lift.rescale", "integrated_gradients",
                                    "input_t_gradient"])
def test_propagate_from_layers_equals_one_propagate_from_per_layer(cifar, method):
    model, x = cifar
    params = {"steps": 3} if method == "integrated_gradients" else {}
    if method == "input_t_gradient":
        params["postprocess"] = "square"  # applied to every injection's input entry
    analyzer = keras_xai.create_analyzer(method, model, dtype="float64", **params)
    rng = np.random.default_rng(5)
    injected = {"fc6": rng.normal(size=(2, 10)),  # one vector per sample here, three there
                model.get_layer("conv3"): rng.normal(size=(6, *model.get_layer("conv3").output.shape[1:]))}
    together = analyzer.propagate_from_layers(x, injected)
    assert list(together) == ["fc6", "conv3"]
    for layer, vectors in injected.items():
        alone = analyzer.propagate_from(x, layer, vectors)
        name = getattr(layer, "name", layer)
        assert set(together[name]) == set(alone)
        for key, values in alone.items():
            np.testing.assert_allclose(together[name][key], values, rtol=1e-12, atol=0, err_msg=f"{name} {key}")
    both = ("inject", tuple(analyzer._model.layer_steps[n] for n in ("fc6", "conv3")), (1, 3))
    assert analyzer._engine._functions[both].experimental_get_tracing_count() == 1  # one trace for both


@pytest.mark.parametrize("method", ["gradient", "deep_lift.rescale"])
def test_prepare_propagate_from_layers_traces_the_call_ahead(cifar, method):
    model, x = cifar
    rng = np.random.default_rng(6)
    injected = {"fc6": rng.normal(size=(4, 10)).astype(np.float32),  # two vectors per sample
                "conv3": rng.normal(size=(2, *model.get_layer("conv3").output.shape[1:])).astype(np.float32)}
    analyzer = keras_xai.create_analyzer(method, model)
    # Only the shapes matter: zero views of the vectors' shape trace the same pass.
    analyzer.prepare_propagate_from_layers(x, {name: np.broadcast_to(np.float32(0), v.shape)
                                               for name, v in injected.items()})
    key = ("inject", tuple(analyzer._model.layer_steps[n] for n in ("fc6", "conv3")), (2, 1))
    compiled = analyzer._engine._functions[key]
    assert compiled.experimental_get_tracing_count() == 1
    prepared = analyzer.propagate_from_layers(x, injected)
    assert compiled.experimental_get_tracing_count() == 1  # the call reused the trace
    fresh = keras_xai.create_analyzer(method, model).propagate_from_layers(x, injected)
    for name in injected:
        for layer, values in fresh[name].items():
            np.testing.assert_array_equal(prepared[name][layer], values, err_msg=f"{name} {layer}")


@pytest.mark.parametrize("method", ["gradient", "input_t_gradient", "integrated_gradients"])
def test_propagate_from_layers_without_copies_gives_the_same_arrays_read_only(cifar, method):
    model, x = cifar
    params = {"steps": 3} if method == "integrated_gradients" else {}
    analyzer = keras_xai.create_analyzer(method, model, **params)
    injected = {"fc5": np.random.default_rng(7).normal(size=(4, 1024)).astype(np.float32)}
    copied = analyzer.propagate_from_layers(x, injected)["fc5"]
    viewed = analyzer.propagate_from_layers(x, injected, copy=False)["fc5"]
    assert set(copied) == set(viewed)
    for layer, values in copied.items():
        np.testing.assert_array_equal(viewed[layer], values, err_msg=layer)
        assert values.flags.writeable  # the default: the caller's own arrays
    if method == "gradient":  # unchanged TF buffers: views (finished or averaged entries are new arrays)
        assert not viewed["conv3"].flags.writeable


def test_prepare_propagate_from_layers_checks_its_arguments(cifar):
    model, x = cifar
    analyzer = keras_xai.create_analyzer("gradient", model)
    with pytest.raises(ValueError, match="has no layer 'fc7'"):
        analyzer.prepare_propagate_from_layers(x, {"fc7": np.zeros((2, 10))})
    with pytest.raises(ValueError, match="relevance"):
        analyzer.prepare_propagate_from_layers(x, {"fc6": np.zeros((3, 10))})  # 3 vectors for 2 samples
    assert not analyzer._engine._functions  # nothing traced


def test_propagate_from_layers_rejects_bad_requests(cifar):
    model, x = cifar
    analyzer = keras_xai.create_analyzer("gradient", model)
    with pytest.raises(ValueError, match="non-empty dict"):
        analyzer.propagate_from_layers(x, {})
    with pytest.raises(ValueError, match=r"layer\(s\) \['fc6'\] given twice"):
        analyzer.propagate_from_layers(x, {"fc6": np.zeros((2, 10)), model.get_layer("fc6"): np.zeros((2, 10))})
    with pytest.raises(ValueError, match="has no layer 'fc7'"):
        analyzer.propagate_from_layers(x, {"fc7": np.zeros((2, 10))})


def test_k_vectors_per_sample_with_a_per_sample_integrated_gradients_reference():
    model = TINY_MODELS["conv"]()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, *model.inputs[0].shape[1:]))
    reference = rng.normal(size=x.shape)
    layer = model.layers[-1].name
    v = rng.normal(size=(6, *model.outputs[0].shape[1:]))
    grouped = keras_xai.create_analyzer("integrated_gradients", model, dtype="float64", steps=4,
                                        reference_inputs=reference).propagate_from(x, layer, v)
    repeated = keras_xai.create_analyzer("integrated_gradients", model, dtype="float64", steps=4,
                                         reference_inputs=np.repeat(reference, 2, axis=0)
                                         ).propagate_from(np.repeat(x, 2, axis=0), layer, v)
    for name, values in repeated.items():
        np.testing.assert_allclose(grouped[name], values, rtol=1e-10, atol=1e-12 * np.abs(values).max(), err_msg=name)
