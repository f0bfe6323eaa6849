"""The deeplift engine's worker process: ``python -m keras_xai.engines.deeplift_worker_main R W``.

deeplift 0.6.13 is TF1 code. It runs here after the workarounds measured in the toolchain notes:
v2 behaviour off, ``tf`` of every deeplift module set to ``tf.compat.v1``, the model converted from
a rewritten copy of the saved model's configuration (empty weight lists for weightless layers,
"Functional" read as "Model", BatchNorm axes as ints; rewritten in memory, so no file is left), the
``update_task_vector`` speed fix, and converters for the layers deeplift lacks
(:mod:`keras_xai.engines.deeplift_layers`).

Every caller-side analyzer gets its own graph and session. The backward pass is built once per
analyzer with the selected output unit chosen inside the graph (one unit per sample, -1 = the
maximal one), so one ``session.run`` computes a whole batch.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
SESSIONS: dict = {}  # graph -> session, for deeplift.util.get_session


def patch_deeplift() -> None:
    """Make deeplift run under TF 2.14 (toolchain notes, workarounds 2 and 4)."""
    tf1.disable_v2_behavior()
    import deeplift  # noqa: F401
    import deeplift.conversion.kerasapi_conversion  # noqa: F401
    import deeplift.layers  # noqa: F401
    import deeplift.models  # noqa: F401
    import deeplift.util
    for name, module in list(sys.modules.items()):
        if name.startswith("deeplift") and getattr(module, "tf", None) is not None:
            module.tf = tf1
    deeplift.util.get_session = lambda: SESSIONS[tf1.get_default_graph()]

    from deeplift.layers.core import OneDimOutputMixin

    def update_task_vector(self):
        """One placeholder-fed assign op per layer instead of new graph ops on every call."""
        if not hasattr(self, "_keras_xai_task_assign"):
            with self.task_vector.graph.as_default():
                self._keras_xai_task_value = tf1.placeholder(tf1.float32, shape=self.task_vector.shape)
                self._keras_xai_task_assign = tf1.assign(self.task_vector, self._keras_xai_task_value)
        vector = np.zeros(self.task_vector.shape.as_list(), dtype=np.float32)
        vector[self._task_index] = self._active
        SESSIONS[self.task_vector.graph].run(self._keras_xai_task_assign, {self._keras_xai_task_value: vector})

    OneDimOutputMixin.update_task_vector = update_task_vector


patch_deeplift()

from deeplift.conversion import kerasapi_conversion as kc  # noqa: E402
from deeplift.layers.core import NonlinearMxtsMode  # noqa: E402

from keras_xai.engines import deeplift_layers as extra  # noqa: E402
from keras_xai.engines.worker_child import RemoteError, run_worker, session_config  # noqa: E402

extra.patch_max_pooling_contribs()

MODES = {"rescale": NonlinearMxtsMode.Rescale, "reveal_cancel": NonlinearMxtsMode.RevealCancel}


def read_model_config(path: str) -> dict:
    """The saved model's configuration with its weights inserted, rewritten for deeplift's converter."""
    with h5py.File(path, "r") as file:
        raw = file.attrs["model_config"]
        config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)
        weights = file["model_weights"] if "model_weights" in file else file
        if config["class_name"] in ("Functional", "Model"):
            config["class_name"] = "Model"
        else:
            raise RemoteError("UnsupportedLayerError",
                              f"deeplift converts functional models only, got {config['class_name']}")
        for layer in config["config"]["layers"]:
            layer_config = layer["config"]
            if layer["class_name"] in ("Functional", "Model", "Sequential"):
                raise RemoteError("UnsupportedLayerError",
                                  f"layer {layer_config['name']!r} is a nested model; deeplift needs a flat model")
            if layer["class_name"] == "BatchNormalization" and isinstance(layer_config.get("axis"), list):
                layer_config["axis"] = layer_config["axis"][0] if len(layer_config["axis"]) == 1 else layer_config["axis"]
            group = weights[layer_config["name"]] if layer_config["name"] in weights else None
            names = [n.decode() if hasattr(n, "decode") else n for n in group.attrs.get("weight_names", [])] \
                if group is not None else []
            layer_config["weight_names"] = names
            layer_config["weights"] = [np.array(group[n]) for n in names]
    return config


class Context:
    """Graph, session and backward pass of one caller-side analyzer."""

    def __init__(self, spec: dict):
        name, params = spec["name"], dict(spec["params"])
        if name == "deep_lift.ablation":
            mode, ablation = params.get("nonlinear_mode", "reveal_cancel"), True
        else:
            mode, ablation = {"deep_lift.rescale": "rescale", "deep_lift.reveal_cancel": "reveal_cancel"}[name], False
        self.graph = tf1.Graph()
        self.session = tf1.Session(graph=self.graph, config=session_config())
        SESSIONS[self.graph] = self.session
        config = read_model_config(spec["model"])
        with self.graph.as_default():
            try:
                self.converted = kc.convert_functional_model(
                    config["config"], nonlinear_mxts_mode=MODES[mode], verbose=False,
                    custom_conversion_funcs=extra.converters(ablation))
            except KeyError as error:
                kind = error.args[0] if error.args else "?"
                layer = next((l["config"]["name"] for l in config["config"]["layers"]
                              if l["class_name"].lower() == str(kind).lower()), "?")
                raise RemoteError("UnsupportedLayerError",
                                  f"deeplift cannot convert layer {layer!r} ({kind})") from error
            self._build(config)

    def _build(self, config):
        layers_by_name = self.converted.get_name_to_layer()
        model_config = config["config"]
        self.layer_names = [layer["config"]["name"] for layer in model_config["layers"]]
        self.layers = {name: layers_by_name[f"{name}_0"] for name in self.layer_names}
        input_name = model_config["input_layers"][0][0]
        output_name = model_config["output_layers"][0][0]
        self.input_layer = self.layers[input_name]
        target = self.layers[output_name]
        activations = target.get_activation_vars()
        if len(activations.shape) != 2:
            raise RemoteError("UnsupportedLayerError",
                              f"the output layer {output_name!r} is not flat; DeepLIFT explains (batch, units) outputs")
        # The selected unit, chosen in the graph: -1 means the sample's maximal unit.
        self.selection = tf1.placeholder(tf1.int32, shape=[None], name="keras_xai_selection")
        maximal = tf1.argmax(activations, axis=1, output_type=tf1.int32)
        chosen = tf1.where(self.selection < 0, maximal, self.selection)
        one_hot = tf1.one_hot(chosen, int(activations.shape[1]), dtype=tf1.float32)
        self.input_layer.reset_mxts_updated()
        target._pos_mxts = one_hot
        target._neg_mxts = one_hot
        target._set_mxts_updated_true()
        self.input_layer.update_mxts()
        self.target = target
        self.target_multipliers = one_hot
        self.contributions = {}
        self.multipliers = {}  # name -> (positive, negative): the tensors propagate_from feeds
        self.reported = {}  # name -> the multiplier relevances() reports (see _reported_multiplier)
        for name, layer in self.layers.items():
            if layer is self.input_layer or not hasattr(layer, "_target_contrib_vars"):
                continue
            self.contributions[name] = layer._target_contrib_vars
            self.multipliers[name] = (layer._pos_mxts, layer._neg_mxts)
            self.reported[name] = self._reported_multiplier(layer)
        self.contributions[input_name] = self.input_layer._target_contrib_vars
        # As the native analyzer: the input's entry is its contributions (what analyze returns).
        self.reported[input_name] = self.contributions[input_name]
        self.input_name = input_name

    @staticmethod
    def _reported_multiplier(layer):
        """One multiplier per unit, as the native analyzer reports it: where the positive and
        negative multipliers differ, the one of the unit's own difference from the reference (m+
        where it is > 0, m- where < 0, their mean at 0)."""
        positive, negative = layer._pos_mxts, layer._neg_mxts
        if positive is negative:
            return positive
        difference = layer._get_diff_from_reference_vars()
        return tf1.where(difference > 0, positive,
                         tf1.where(difference < 0, negative, 0.5 * (positive + negative)))

    def close(self):
        SESSIONS.pop(self.graph, None)
        self.session.close()

    def _feed(self, x, reference):
        return {self.input_layer.get_activation_vars(): x, self.input_layer.get_reference_vars(): reference}

    def _quantity(self, quantity: str) -> dict:
        if quantity not in ("multipliers", "contributions"):
            raise ValueError(f"unknown quantity {quantity!r}")
        return self.reported if quantity == "multipliers" else self.contributions

    def analyze(self, x, reference, selection, everything: bool, quantity: str = "multipliers"):
        feed = self._feed(x, reference)
        feed[self.selection] = selection
        if not everything:
            return {}, {"analysis": self.session.run(self.contributions[self.input_name], feed)}
        tensors = self._quantity(quantity)
        names = [n for n in self.layer_names if n in tensors]
        values = self.session.run([tensors[n] for n in names], feed)
        return {"names": names}, {f"r{i}": v for i, v in enumerate(values)}

    def _below(self, name) -> list:
        """``name`` and the names of every layer it depends on, in forward order."""
        reached, stack = set(), [self.layers[name]]
        while stack:
            layer = stack.pop()
            if id(layer) in reached:
                continue
            reached.add(id(layer))
            inputs = getattr(layer, "inputs", None)
            if inputs is not None:
                stack.extend(inputs if isinstance(inputs, list) else [inputs])
        return [n for n in self.layer_names if id(self.layers[n]) in reached and n in self.contributions]

    def inject(self, name, x, reference, relevance, quantity: str = "multipliers"):
        """Positive and negative multipliers at ``name`` both set to ``relevance``; every path that
        bypasses ``name`` starts from zero (the target's multipliers are zero)."""
        if name not in self.multipliers:
            raise ValueError(f"cannot inject at layer {name!r}")
        positive, negative = self.multipliers[name]
        vector = relevance.reshape([len(x)] + positive.shape.as_list()[1:])
        feed = self._feed(x, reference)
        feed[self.selection] = np.zeros(len(x), np.int32)
        if name != self.target_name:
            zeros = np.zeros([len(x)] + self.target_multipliers.shape.as_list()[1:], np.float32)
            feed[self.target_multipliers] = zeros
        feed[positive] = vector
        feed[negative] = vector
        names = self._below(name)
        tensors = self._quantity(quantity)
        values = self.session.run([tensors[n] for n in names], feed)
        return {"names": names}, {f"r{i}": v for i, v in enumerate(values)}

    def handle(self, request: dict, arrays: dict):
        x, reference = arrays["x"], arrays["reference"]
        if request["op"] == "analyze":
            return self.analyze(x, reference, arrays["selection"].astype(np.int32), request["what"] == "all",
                                request.get("quantity", "multipliers"))
        if request["op"] == "inject":
            return self.inject(request["layer"], x, reference, arrays["relevance"],
                               request.get("quantity", "multipliers"))
        if request["op"] == "package_contributions":
            contributions = self.package_contributions(x, reference, request["task_index"])
            # The graph's size tells the tests whether update_task_vector still adds operations.
            return {"graph_operations": len(self.graph.get_operations())}, {"analysis": contributions}
        raise ValueError(f"unknown request {request['op']!r}")

    @property
    def target_name(self):
        return next(n for n, layer in self.layers.items() if layer is self.target)

    def package_contributions(self, x, reference, task_index: int):
        """Contributions from deeplift's own ``get_target_contribs_func`` (for tests of the speed fix)."""
        with self.graph.as_default():
            if not hasattr(self, "_package_function"):
                self._package_function = self.converted.get_target_contribs_func(
                    find_scores_layer_name=f"{self.input_name}_0",
                    pre_activation_target_layer_name=f"{self.target_name}_0")
            return self._package_function(task_idx=int(task_index), input_data_list=[x],
                                          input_references_list=[reference], batch_size=len(x),
                                          progress_update=None)


if __name__ == "__main__":
    run_worker(Context)
