"""The innvestigate engine's worker process: ``python -m keras_xai.engines.innvestigate_worker_main R W``.

TensorFlow runs in graph mode here. Every analyzer of the caller gets its own ``tf.Graph`` and
session holding its own copy of the model (so the n-th analyzer is not slowed down by the graphs of
the others), created on its first request and kept until the caller releases it.
"""
from __future__ import annotations

import contextlib
import os
import re
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()

import innvestigate  # noqa: E402
import innvestigate.analyzer.relevance_based.relevance_analyzer as ranalyzer  # noqa: E402
import innvestigate.analyzer.relevance_based.relevance_rule as rrule  # noqa: E402
import innvestigate.backend as ibackend  # noqa: E402
import innvestigate.backend.checks as ichecks  # noqa: E402
import innvestigate.backend.graph as igraph  # noqa: E402
from innvestigate.analyzer.reverse_base import ReverseAnalyzerBase  # noqa: E402

from keras_xai import graph as keras_graph  # noqa: E402
from keras_xai.engines import innvestigate_rules as extra  # noqa: E402
from keras_xai.engines.worker_child import RemoteError, run_worker, session_config  # noqa: E402

keras = tf.keras
K = tf.compat.v1.keras.backend

#: Images per run when SmoothGrad / Integrated Gradients evaluate their copies of the batch.
IMAGES_PER_RUN = 256


# --- analyzers by name ---------------------------------------------------------------------------

def _proxy(rule_class, **fixed):
    class Proxy(rule_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **dict(kwargs, **fixed))
    Proxy.__name__ = f"{rule_class.__name__}Proxy"
    return Proxy


def _lrp_params(params: dict) -> dict:
    params = dict(params)
    if isinstance(params.get("input_layer_rule"), list):
        params["input_layer_rule"] = tuple(params["input_layer_rule"])
    return params


def make_analyzer(name: str, model, params: dict, selection_mode: str):
    """The iNNvestigate analyzer called ``name`` (or one of this package's extra names)."""
    params = _lrp_params(params)
    # iNNvestigate's own checks are run by _check_model (upstream raises NotImplementedError after
    # every *warning*, e.g. "LRP is only tested for convolutional neural networks" on ReLU layers).
    params.pop("disable_model_checks", None)
    common = {"neuron_selection_mode": selection_mode, "disable_model_checks": True}
    if name == "lrp.z_IB":
        rule = _proxy(rrule.ZRule, bias=False)
        return ranalyzer.LRP(model, rule=rule, bn_layer_rule=rule, **common, **params)
    if name == "lrp.epsilon_IB":
        return ranalyzer.LRPEpsilon(model, bias=False, **common, **params)
    if name == "lrp.cmp":
        alpha, beta, epsilon = (float(params.pop(k, d)) for k, d in (("alpha", 1.0), ("beta", 0.0), ("epsilon", 1e-10)))
        alpha_beta = _proxy(rrule.AlphaBetaRule, alpha=alpha, beta=beta, bias=True)
        rules = [(ichecks.is_dense_layer, _proxy(rrule.EpsilonRule, epsilon=epsilon, bias=True)),
                 (ichecks.is_conv_layer, alpha_beta)]
        analyzer = ranalyzer.LRP(model, rule=rules, bn_layer_rule=alpha_beta, **common, **params)
        analyzer._kx_conv_rule = alpha_beta
        return analyzer
    if name == "rect_grad":
        return extra.RectGrad(model, **common, **params)
    if name == "lrp" and isinstance(params.get("rule"), list):
        params["rule"] = [tuple(r) if isinstance(r, list) else r for r in params["rule"]]
    if name not in innvestigate.analyzer.analyzers:
        raise ValueError(f"iNNvestigate 2.1.2 has no analyzer {name!r}")
    return innvestigate.create_analyzer(name, model, **common, **params)


def _check_model(analyzer, name: str) -> None:
    """iNNvestigate's model checks, with the offending layers named."""
    checks = [c for c in analyzer._model_checks if c["check_type"] == "exception"]
    if not checks:
        return
    found = igraph.model_contains(analyzer._model, [c["check"] for c in checks])
    for layers, check in zip(found, checks):
        if layers:
            described = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in layers)
            raise RemoteError("UnsupportedLayerError",
                              f"innvestigate cannot run {name} on this model: {check['message']} "
                              f"Offending layer(s): {described}.")


def _layer_being_processed(error: BaseException):
    """The Keras layer iNNvestigate was reversing when ``error`` was raised (from the traceback)."""
    found = None
    frame_tb = error.__traceback__
    while frame_tb is not None:
        frame = frame_tb.tb_frame
        if frame.f_code.co_name in ("reverse_model", "meta_mapping") and "layer" in frame.f_locals:
            candidate = frame.f_locals["layer"]
            if isinstance(candidate, keras.layers.Layer):
                found = candidate
        frame_tb = frame_tb.tb_next
    return found


@contextlib.contextmanager
def _naming_the_layer(name: str):
    try:
        yield
    except RemoteError:
        raise
    except Exception as error:
        layer = _layer_being_processed(error)
        if layer is None:
            raise
        raise RemoteError(
            "UnsupportedLayerError",
            f"innvestigate failed on layer {layer.name!r} ({type(layer).__name__}) while building {name}: "
            f"{type(error).__name__}: {error}",
        ) from error


# --- one analyzer of the caller ------------------------------------------------------------------

class ReverseRunner:
    """A reverse analyzer built once, evaluated with ``session.run`` on any of its tensors."""

    def __init__(self, context, model, name: str, params: dict, inject: bool = False):
        self.context = context
        user_params = params
        self.analyzer = make_analyzer(name, model, params, "all" if inject else "index")
        if not user_params.get("disable_model_checks", False):
            _check_model(self.analyzer, name)
        if not isinstance(self.analyzer, ReverseAnalyzerBase):
            raise ValueError(f"{name} does not reverse the network; it offers analyze() only")
        if context.options.get("residual_rules", True):
            extra.residual_mappings(self.analyzer, user_params)
        self._reversed = None
        original = self.analyzer._reverse_model

        def capture(model, stop_analysis_at_tensors=None, return_all_reversed_tensors=False):
            inputs, everything = original(model, stop_analysis_at_tensors=stop_analysis_at_tensors,
                                          return_all_reversed_tensors=True)
            self._reversed = everything
            return inputs, (everything if return_all_reversed_tensors else None)

        self.analyzer._reverse_model = capture
        self.injected = None
        if inject:
            self._prepare_injection()
        with _naming_the_layer(name):
            self.analyzer.create_analyzer_model()
        K.get_session()  # initialises the variables of the surrogate layers, nothing else
        analyzer_model = self.analyzer._analyzer_model
        self.inputs = analyzer_model.inputs
        self.analysis = analyzer_model.outputs[0]
        self.names, self.tensors = self._layer_tensors(model)

    def _prepare_injection(self):
        analyzer = self.analyzer
        # Deep Taylor puts a ReLU on the output; the injected vector must arrive unchanged.
        analyzer._prepare_model = types.MethodType(extra.prepare_model, analyzer)
        original = analyzer._create_analysis

        def head(X):
            self.injected = keras.layers.Input(shape=tuple(X.shape.as_list()[1:]), name="keras_xai_injected")
            return self.injected

        def create_analysis(model, stop_analysis_at_tensors=None):
            result = original(model, stop_analysis_at_tensors=stop_analysis_at_tensors)
            analysis, debug = (result[0], list(result[1]) if len(result) > 1 else []) \
                if isinstance(result, tuple) else (result, [])
            return analysis, debug, [self.injected]

        analyzer._head_mapping = head
        analyzer._create_analysis = create_analysis

    def _layer_tensors(self, model):
        """Layer names (forward order) and the reversed tensor at each layer's output."""
        wanted = {layer.name for layer in model.layers}
        _, execution, _ = igraph.trace_model_execution(self.analyzer._prepared_model)
        names, tensors = [], []
        input_layer = keras_graph.producer(model.inputs[0])
        names.append(input_layer.name)
        tensors.append(self.analysis)
        for layer, _, outputs in execution:
            if layer.name not in wanted or isinstance(layer, keras.layers.InputLayer):
                continue
            output = ibackend.to_list(outputs)[0]
            entry = self._reversed.get(id(output))
            if entry is None:
                tensor = tf.zeros_like(output)
            elif entry["final_tensor"] is not None:
                tensor = entry["final_tensor"]
            else:
                parts = entry["tensors"]
                tensor = parts[0] if len(parts) == 1 else tf.add_n(parts)
            names.append(layer.name)
            tensors.append(tensor)
        return names, tensors

    def run(self, x, second, everything: bool):
        feed = {self.inputs[0]: x, self.inputs[1]: second}
        fetches = self.tensors if everything else [self.analysis]
        return self.context.session.run(fetches, feed_dict=feed)


def _reserve_layer_names(model) -> None:
    """Make the layers iNNvestigate creates (e.g. an ``Add`` summing relevances) avoid the model's
    layer names: a model layer called "add" made iNNvestigate's first ``Add()`` clash with it."""
    from keras.src import backend as keras_backend
    counters = keras_backend.get_default_graph_uid_map()
    for layer in model.layers:
        match = re.fullmatch(r"(.+?)(?:_(\d+))?", layer.name)
        base, number = match.group(1), int(match.group(2) or 0)
        counters[("", base)] = max(counters[("", base)], number + 1)


class Context:
    """Graph, session, model and analyzers of one caller-side analyzer."""

    def __init__(self, spec: dict):
        self.name = spec["name"]
        self.params = dict(spec["params"])
        self.options = dict(spec["options"])
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config())
        with self.scope():
            self.model = keras.models.load_model(spec["model"], compile=False)
            _reserve_layer_names(self.model)
        self.runners = {}

    @contextlib.contextmanager
    def scope(self):
        with self.graph.as_default(), self.session.as_default():
            K.set_session(self.session)
            yield

    def close(self):
        self.session.close()

    # Methods that average the gradient over modified copies of the batch (computed here, on top
    # of the gradient analyzer, because iNNvestigate's wrappers fail on BatchNorm models).
    @property
    def augmentation(self):
        from keras_xai import augment
        if self.name == "smoothgrad":
            return augment.GaussianNoise(int(self.params.get("augment_by_n", 64)),
                                         float(self.params.get("noise_scale", 1.0)), self.params.get("seed"))
        if self.name == "integrated_gradients":
            return augment.StraightPath(int(self.params.get("steps", 64)), self.params.get("reference_inputs", 0.0))
        return None

    def _inner_params(self) -> dict:
        if self.augmentation is None:
            return self.params
        keep = set(GRADIENT_PARAMS)
        return {k: v for k, v in self.params.items() if k in keep}

    def runner(self, key, inject_layer=None) -> ReverseRunner:
        if key not in self.runners:
            with self.scope():
                if inject_layer is None:
                    model = self.model
                else:
                    model = keras.Model(self.model.inputs, self.model.get_layer(inject_layer).output)
                name = self.name if self.augmentation is None else "gradient"
                self.runners[key] = ReverseRunner(self, model, name, self._inner_params(),
                                                  inject=inject_layer is not None)
        return self.runners[key]

    def predict_max(self, x) -> np.ndarray:
        if "predict" not in self.runners:
            with self.scope():
                self.runners["predict"] = self.model.outputs[0]
        output = self.session.run(self.runners["predict"], {self.model.inputs[0]: x})
        return np.argmax(output.reshape(len(x), -1), axis=1).astype(np.int32)

    def _averaged(self, run, x, second):
        """``run(x, second)`` (a list of arrays) averaged over the augmentation's copies of ``x``."""
        augmentation = self.augmentation
        if augmentation is None:
            return run(x, second)
        group = max(1, IMAGES_PER_RUN // len(x))
        copies = augmentation.copies(x)
        totals, done = None, 0
        while done < augmentation.count:
            block = [next(copies) for _ in range(min(group, augmentation.count - done))]
            done += len(block)
            results = run(np.concatenate(block), np.concatenate([second] * len(block)))
            sums = [r.reshape(len(block), len(x), *r.shape[1:]).sum(axis=0) for r in results]
            totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
        return [t / augmentation.count for t in totals]

    def _finish_input(self, relevance, x):
        augmentation = self.augmentation
        return relevance if augmentation is None else augmentation.finish_input(relevance, x)

    # --- requests ---------------------------------------------------------------------------

    def handle(self, request: dict, arrays: dict):
        if request["op"] == "analyze":
            return self.analyze(arrays["x"], arrays["selection"].astype(np.int32), request["what"] == "all")
        if request["op"] == "inject":
            return self.inject(request["layer"], arrays["x"], arrays["relevance"])
        raise ValueError(f"unknown request {request['op']!r}")

    def analyze(self, x, selection, everything: bool):
        if self.name in ("input", "random", "gradient.baseline"):
            if everything:
                raise ValueError(f"{self.name} does not reverse the network; it offers analyze() only")
            return self._plain_analyze(x, selection)
        if self.augmentation is not None and (selection < 0).any():
            # The unit that is maximal for the clean input, not for each noisy copy.
            selection = np.where(selection < 0, self.predict_max(x), selection).astype(np.int32)
        runner = self.runner("main")

        def run(batch, chosen):
            index = np.stack([np.arange(len(batch)), chosen], axis=1).astype(np.int32)
            return runner.run(batch, index, everything)

        with self.scope():
            values = self._averaged(run, x, selection)
        values[0] = self._finish_input(values[0], x)
        if not everything:
            return {}, {"analysis": values[0]}
        return {"names": runner.names}, {f"r{i}": v for i, v in enumerate(values)}

    def inject(self, layer, x, relevance):
        runner = self.runner(("inject", layer), inject_layer=layer)
        flat = relevance.reshape(len(relevance), -1)

        def run(batch, vectors):
            return runner.run(batch, vectors, everything=True)

        with self.scope():
            values = self._averaged(run, x, flat)
        values[0] = self._finish_input(values[0], x)
        # The injected layer's own entry is the (reshaped) vector itself.
        return {"names": runner.names}, {f"r{i}": v for i, v in enumerate(values)}

    def _plain_analyze(self, x, selection):
        if "plain" not in self.runners:
            with self.scope():
                analyzer = make_analyzer(self.name, self.model, self.params, "index")
                if not self.params.get("disable_model_checks", False):
                    _check_model(analyzer, self.name)
                with _naming_the_layer(self.name):
                    analyzer.create_analyzer_model()
                self.runners["plain"] = analyzer
        analyzer = self.runners["plain"]
        if (selection < 0).any():
            selection = np.where(selection < 0, self.predict_max(x), selection).astype(np.int32)
        with self.scope():
            index = np.stack([np.arange(len(x)), selection], axis=1).astype(np.int32)
            model = analyzer._analyzer_model
            feeds = {model.inputs[0]: x}
            if len(model.inputs) > 1:
                feeds[model.inputs[1]] = index
            return {}, {"analysis": self.session.run(model.outputs[0], feeds)}


#: Parameters of the gradient analyzer that SmoothGrad / Integrated Gradients pass on to it.
GRADIENT_PARAMS = ("postprocess", "disable_model_checks", "allow_lambda_layers", "reverse_clip_values",
                         "reverse_project_bottleneck_layers", "reverse_check_min_max_values", "reverse_check_finite")


def setup() -> None:
    extra.install_neuron_selection()
    extra.install_relu_layer_fixes()
    extra.install_input_layer_check()
    extra.install_prepare_model_fix()


if __name__ == "__main__":
    run_worker(Context, setup)
