"""Read a Keras model into a list of nodes in topological order, on Keras 2 and Keras 3.

This is the only module that touches Keras internals. Two readers know where each Keras keeps its
layer graph; which one applies is decided by the model's own class (a ``tf_keras`` model is read
as Keras 2 even when ``import keras`` is Keras 3), never by which Keras this package imported:

========================  ==================================  ====================================
                          Keras 2 (tf.keras 2.14, tf-keras)   Keras 3 (TensorFlow backend)
========================  ==================================  ====================================
nodes by depth            ``model._nodes_by_depth``           the same on ``Functional``; a
                          (``_is_graph_network``)             ``Sequential`` keeps it on
                                                              ``model._functional``
a node's layer / inputs   ``node.layer``, ``keras_inputs``    ``node.operation``, ``input_tensors``
producer of a tensor      ``tensor._keras_history[0]`` on both
========================  ==================================  ====================================

Everything else in the package, and the experiment packages, ask this module for what they need
from a model (its output layer, input names, shapes, the Keras it belongs to, its weight-file suffix).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import ModuleType

import tensorflow as tf

#: Top-level packages that may hold Keras classes: Keras 3 or Keras 2.14 ("keras"), tf-keras 2.x.
_KERAS_PACKAGES = ("keras", "tf_keras")


@dataclass(frozen=True)
class Node:
    """One application of a layer.

    Attributes
    ----------
    index : int
        Position in :attr:`ModelGraph.nodes` (0 is the model input).
    name : str
        The layer's name (``name:k`` for the k-th reuse of a shared layer).
    layer : keras.layers.Layer
        The Keras layer (``InputLayer`` for node 0).
    inputs : tuple of int
        Indices of the nodes whose outputs this node consumes, in call order.
    output_shape : tuple
        Static output shape including the batch dimension (``None``).
    """

    index: int
    name: str
    layer: object
    inputs: tuple
    output_shape: tuple


@dataclass(frozen=True)
class ModelGraph:
    """A model as nodes in topological order.

    Attributes
    ----------
    nodes : tuple of Node
        ``nodes[0]`` is the model input; every node comes after the nodes it consumes.
    output_index : int
        The node producing the model output.
    aliases : dict
        Names of skipped pass-through layers (``Dropout``) -> the node whose output they forward.
    layers : module
        ``keras.layers`` of the Keras the model belongs to (for ``isinstance`` checks).
    """

    nodes: tuple
    output_index: int
    aliases: dict = field(default_factory=dict)
    layers: ModuleType | None = None

    def index_of(self, name: str) -> int:
        """Node index for a layer name (pass-through layers resolve to their input's node)."""
        for node in self.nodes:
            if node.name == name:
                return node.index
        if name in self.aliases:
            return self.aliases[name]
        raise KeyError(name)

    @property
    def layer_names(self) -> list:
        """Names of all layers that have an output the engine can report, in forward order."""
        names = [node.name for node in self.nodes]
        return names + [alias for alias in self.aliases if alias not in names]


# --- which Keras -----------------------------------------------------------------------------

def keras_of(obj) -> ModuleType | None:
    """The Keras package (``keras`` 2 or 3, ``tf_keras``) whose layer or model class ``obj`` is an
    instance of, or whose layer class it is; None for anything else.

    Only packages already imported are considered: a model of a Keras nobody imported cannot exist.
    """
    for name in _KERAS_PACKAGES:
        package = sys.modules.get(name)
        layer_class = getattr(getattr(package, "layers", None), "Layer", None)
        if layer_class is None:
            continue
        if isinstance(obj, layer_class) or (isinstance(obj, type) and issubclass(obj, layer_class)):
            return package
    return None


def keras_major(obj) -> int:
    """2 or 3: the major version of the Keras ``obj`` belongs to (see :func:`keras_of`)."""
    package = keras_of(obj)
    if package is None:
        raise TypeError(f"expected a Keras layer or model, got {type(obj).__name__}")
    return int(str(package.__version__).split(".")[0])


def is_model(obj) -> bool:
    """True for a Keras model of any Keras this process has imported."""
    package = keras_of(obj)
    return package is not None and isinstance(obj, package.Model)


def is_layer_class(obj) -> bool:
    """True for a Keras layer class (of any Keras), e.g. ``keras.layers.Dense``."""
    return isinstance(obj, type) and keras_of(obj) is not None


def check_model(model, what: str = "a keras.Model") -> None:
    """Raise a clear error unless ``model`` is a Keras model the native engine can read.

    Raises
    ------
    TypeError
        Not a Keras model.
    ValueError
        A Keras 3 model on a backend other than TensorFlow (the engine's passes are TF ops).
    """
    if not is_model(model):
        raise TypeError(f"expected {what}, got {type(model).__module__}.{type(model).__name__}")
    if keras_major(model) >= 3:
        backend = keras_of(model).config.backend()
        if backend != "tensorflow":
            raise ValueError(
                f"model {model.name!r} is a Keras 3 model on the {backend!r} backend; keras_xai's native "
                "engine runs TensorFlow ops and needs the TensorFlow backend "
                "(set KERAS_BACKEND=tensorflow before importing keras)")


# --- facts about a model that differ between the two Kerases ---------------------------------

def producer(tensor):
    """The layer that computed a symbolic Keras tensor (``_keras_history[0]`` on both Kerases)."""
    return tensor._keras_history[0]


def output_layer(model):
    """The layer computing the (single) model output."""
    return producer(model.outputs[0])


def input_names(model) -> list:
    """Names of the model's input layers (Keras 3 has no ``model.input_names``)."""
    return [producer(tensor).name for tensor in model.inputs]


def shape_of(tensor) -> tuple:
    """Static shape of a symbolic tensor as a tuple (``None`` for unknown dimensions)."""
    return tuple(tf.TensorShape(tensor.shape).as_list())


def output_shape(model, name: str) -> tuple:
    """Static output shape (batch dimension included) of the layer or input ``name`` of ``model``.

    Raises
    ------
    ValueError
        If ``model`` has no such layer, or the layer is used several times (no single output).
    """
    names = input_names(model)
    if name in names:
        return shape_of(model.inputs[names.index(name)])
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {name!r}; its layers: "
                         f"{', '.join(layer.name for layer in model.layers)}") from None
    reader = _reader(model)
    nodes = [node for node in _graph_nodes(model) if reader.layer(node) is layer]
    if len(nodes) != 1:
        raise ValueError(f"layer {name!r} of model {model.name!r} is applied {len(nodes)} times; "
                         "it has no single output shape")
    outputs = tf.nest.flatten(reader.outputs(nodes[0]))
    return shape_of(outputs[0])


def with_outputs(model, outputs, name: str | None = None):
    """A new model of the same Keras as ``model``, from its inputs to ``outputs``."""
    # One input as a tensor, not a list: Keras 3 warns when called with a structure other than its inputs'.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras_of(model).Model(inputs=inputs, outputs=outputs, name=name or model.name)


def weights_suffix(model) -> str:
    """The file suffix ``model.save_weights`` needs: ``.weights.h5`` on Keras 3, ``.h5`` on Keras 2."""
    return ".weights.h5" if keras_major(model) >= 3 else ".h5"


# --- the two readers -------------------------------------------------------------------------

class _Keras2Reader:
    """tf.keras 2.14 and tf-keras 2.x: a graph network keeps ``_nodes_by_depth``."""

    @staticmethod
    def nodes_by_depth(model):
        if not getattr(model, "_is_graph_network", False):
            return None
        return getattr(model, "_nodes_by_depth", None)

    @staticmethod
    def layer(node):
        return node.layer

    @staticmethod
    def inputs(node):
        return node.keras_inputs

    @staticmethod
    def outputs(node):
        return node.outputs


class _Keras3Reader:
    """Keras 3: ``Functional._nodes_by_depth``; a built ``Sequential`` wraps a ``Functional``."""

    @staticmethod
    def nodes_by_depth(model):
        functional = getattr(model, "_functional", None) or model
        return getattr(functional, "_nodes_by_depth", None)

    @staticmethod
    def layer(node):
        return node.operation

    @staticmethod
    def inputs(node):
        return node.input_tensors

    @staticmethod
    def outputs(node):
        return node.output_tensors


def _reader(model):
    return _Keras3Reader if keras_major(model) >= 3 else _Keras2Reader


def _graph_nodes(model) -> list:
    """The model's Keras nodes, input side first (higher depth = closer to the input)."""
    nodes_by_depth = _reader(model).nodes_by_depth(model)
    if not nodes_by_depth:
        raise ValueError(
            f"model {model.name!r} has no known layer graph: build it with an input shape "
            "(keras.Input / InputLayer(shape=...)) or call model.build(input_shape) first; "
            "subclassed models are not supported"
        )
    return [node for depth in sorted(nodes_by_depth, reverse=True) for node in nodes_by_depth[depth]]


def read_model(model) -> ModelGraph:
    """Read a built Sequential or functional Keras model (Keras 2 or Keras 3 on TensorFlow).

    Parameters
    ----------
    model : keras.Model
        Single-input, single-output model whose graph is known (built with an input shape).

    Returns
    -------
    ModelGraph

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    ValueError
        If the model is not built, has several inputs or outputs, runs on a non-TensorFlow Keras 3
        backend, or contains an operation that is not a layer.
    """
    check_model(model)
    reader = _reader(model)
    keras_nodes = _graph_nodes(model)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "the analyzers support exactly one input and one output"
        )
    layers = keras_of(model).layers
    pass_through = (layers.Dropout, layers.SpatialDropout2D)

    producers = {id(model.inputs[0]): 0}
    input_layer = producer(model.inputs[0])
    nodes = [Node(0, input_layer.name, input_layer, (), shape_of(model.inputs[0]))]
    aliases = {}
    uses = {}
    for keras_node in keras_nodes:
        if keras_node.is_input:
            continue
        layer = reader.layer(keras_node)
        if not isinstance(layer, layers.Layer):
            raise ValueError(f"model {model.name!r} applies the operation {type(layer).__name__} "
                             f"({getattr(layer, 'name', '?')!r}) outside a layer; wrap it in a Keras layer")
        outputs = tf.nest.flatten(reader.outputs(keras_node))
        inputs = tf.nest.flatten(reader.inputs(keras_node))
        if len(outputs) != 1:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has several outputs; not supported")
        input_indices = tuple(producers[id(t)] for t in inputs)
        if isinstance(layer, pass_through):
            producers[id(outputs[0])] = input_indices[0]
            aliases[layer.name] = input_indices[0]
            continue
        count = uses.get(layer.name, 0)
        uses[layer.name] = count + 1
        name = layer.name if count == 0 else f"{layer.name}:{count}"
        index = len(nodes)
        nodes.append(Node(index, name, layer, input_indices, shape_of(outputs[0])))
        producers[id(outputs[0])] = index
    return ModelGraph(tuple(nodes), producers[id(model.outputs[0])], aliases, layers)
