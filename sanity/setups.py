"""Which model, images and layers an experiment runs on: the paper's three networks and our MNIST variant."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tensorflow import keras

import keras_xai
from architectures import cache, data, models, training, zoo
from architectures.weights import load_weights_file

from . import run_key
from .experiment_inputs import ExperimentInputs
from .randomization import CASCADING_STEPS

# The authors' CSC injection layers (protocols.md), top first.
CSC_INJECTION_LAYERS = {
    "cifar_net": ["fc6", "fc5", "conv4", "conv3", "conv2"],
    "vgg16": ["predictions", "fc1", "block4_conv3", "block3_conv3", "block2_conv2"],
    "resnet50": ["predictions", "conv5_block1_out", "conv4_block2_out", "conv3_block4_out", "conv3_block2_out",
                 "conv2_block2_out"],
    "lstm_classifier": ["logits", "lstm2"],  # ours (issue 18): the logits and the top LSTM's last state
}
# The lowest layer with weights (the thesis' LSTM: its first LSTM layer), where CSC is read.
FIRST_CONV_LAYER = {"cifar_net": "conv1", "vgg16": "block1_conv1", "resnet50": "conv1_conv",
                    "lstm_classifier": "lstm1"}
# The first cascading step that randomizes a convolution (the LSTM: a recurrent layer); every dense
# layer above it is random too.
FIRST_CONV_STEP = {"cifar_net": "conv4", "vgg16": "block5_conv3", "resnet50": "conv5_block2_",
                   "lstm_classifier": "lstm2"}
# Layers whose outputs are sequences: CSC is also read per time step there (the input: per row).
SEQUENCE_LAYERS = {"lstm_classifier": ("lstm1", "rows")}
# Caffe preprocessing maps pixel values [0, 255] to [0 - mean, 255 - mean] per channel.
CAFFE_INPUT_RANGE = (float(-data.CAFFE_BGR_MEAN.max()), float(255 - data.CAFFE_BGR_MEAN.min()))
AUTHORS_FIRST_CIFAR_IMAGE = 30  # the authors used CIFAR test index 30 plus 199 random test images


@dataclass
class Setup:
    name: str
    model: keras.Model  # explains logits (softmax removed)
    inputs: ExperimentInputs
    display_images: np.ndarray  # what a reader sees next to the maps
    class_names: list
    cascading_steps: list
    injection_layers: list
    first_conv_layer: str
    first_conv_step: str
    description: str
    provenance: dict = None  # {"weights": ..., "data": ...}: named in every JSON and the report
    sequence_layers: tuple = ()  # layers with a time axis (SEQUENCE_LAYERS)


def _provenance(model, weights_source: str, weights_file, dataset: str, data_dir, inputs) -> dict:
    """Where the weights and the images come from, with content hashes a reader can check."""
    weights = {"source": weights_source, "file": None if weights_file is None else str(weights_file),
               "file_sha256": None, "content_digest": run_key.weights_digest(model)}
    if weights_file is not None and Path(weights_file).is_file():
        weights["file_sha256"] = cache.file_sha256(Path(weights_file))
    data_section = {"dataset": dataset, "data_dir": None if data_dir is None else str(data_dir),
                    "n_images": int(len(inputs.indices)), "indices": [int(i) for i in inputs.indices],
                    "content_digest": run_key.digest(inputs.images, inputs.labels)}
    return {"weights": weights, "data": data_section}


def choose_indices(n_available: int, n_images: int, seed: int, first: int | None = None) -> np.ndarray:
    """``first`` (if given) followed by random other indices without replacement, sorted after the first."""
    n_images = min(n_images, n_available)
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(n_available), [first] if first is not None else [])
    chosen = np.sort(rng.choice(pool, size=n_images - (first is not None), replace=False))
    return np.concatenate([[first], chosen]).astype(np.int64) if first is not None else chosen.astype(np.int64)


def _initialised(dataset: str) -> zoo.TrainedModel:
    """The appendix-D net before training: Keras' initializers, seeded as the trained model's start."""
    keras.utils.set_random_seed(0)  # what zoo.trained_model seeds before building (seed 0)
    model = models.cifar_net(input_shape=(28, 28, 1) if dataset == "mnist" else (32, 32, 3))
    return zoo.TrainedModel(model, {"source": "random (Keras' initializers, seed 0)"})


def _trained_cifar_net(dataset: str, epochs, data_dir) -> zoo.TrainedModel:
    """The cached trained model (``epochs``: of the default recipe, 0: untrained)."""
    if epochs == 0:
        return _initialised(dataset)
    return zoo.trained_model("cifar_net", dataset, seed=0, epochs=epochs, data_dir=data_dir)


def _cifar_net_setup(dataset: str, weights, n_images: int, seed: int, data_dir, n_fit: int, epochs=None) -> Setup:
    if dataset == "mnist":
        trained = _trained_cifar_net("mnist", epochs, data_dir) if weights is None else None
        split = data.mnist()
        shape, names = (28, 28, 1), [str(i) for i in range(10)]
        test_images, test_labels = split.test.images, split.test.labels
        fit_source = split.train.images
        first = None
    elif dataset in ("cifar10", "samples"):
        shape, names = (32, 32, 3), list(data.CIFAR10_CLASSES)
        trained = None
        if weights is None:
            trained = _trained_cifar_net("cifar10", epochs, data_dir)
        if dataset == "cifar10":
            split = data.cifar10(data_dir)
            test_images, test_labels, fit_source = split.test.images, split.test.labels, split.train.images
            first = AUTHORS_FIRST_CIFAR_IMAGE
        else:
            samples = data.sample_images("cifar10")
            test_images, test_labels, fit_source, first = samples.images, samples.labels, samples.images, None
    else:
        raise ValueError(f"cifar_net runs on --dataset mnist, cifar10 or samples, not {dataset!r}")
    if trained is not None and epochs == 0:
        model, weights_source, weights_file = trained.model, trained.metadata["source"], None
    elif trained is not None:
        model = trained.model
        source = trained.metadata.get("source")
        weights_source, weights_file = "the project's trained model", source if source != "trained" else None
    else:
        weights_source, weights_file = "file", weights
        model = models.cifar_net(input_shape=shape)
        load_weights_file(model, weights)
    indices = choose_indices(len(test_images), n_images, seed, first)
    images = training.images_to_float(test_images[indices])
    fit_images = training.images_to_float(fit_source[:n_fit]) if n_fit else None
    inputs = ExperimentInputs(images, test_labels[indices], indices, (0.0, 1.0), fit_images)
    display = images[..., 0] if shape[-1] == 1 else images
    trained_for = {None: "trained", 0: "untrained (random init)"}.get(epochs, f"trained {epochs} epoch(s)")
    return Setup("cifar_net", keras_xai.model_wo_softmax(model), inputs, display, names,
                 CASCADING_STEPS["cifar_net"], CSC_INJECTION_LAYERS["cifar_net"], FIRST_CONV_LAYER["cifar_net"], FIRST_CONV_STEP["cifar_net"],
                 f"appendix-D CIFAR net {trained_for} on {dataset}" if weights is None
                 else f"appendix-D CIFAR net trained on {dataset}",
                 _provenance(model, weights_source, weights_file, dataset, data_dir, inputs))


def _imagenet_setup(name: str, dataset: str, weights, n_images: int, seed: int, data_dir) -> Setup:
    builder = models.vgg16 if name == "vgg16" else models.resnet50
    model = builder(weights=weights)
    if dataset == "samples":
        samples = data.sample_images("imagenet")
        indices = choose_indices(len(samples.labels), n_images, seed)
        rgb, labels = samples.images[indices], samples.labels[indices]
        images = data.caffe_preprocess(rgb)
    elif dataset == "imagenet":
        if data_dir is None:
            raise ValueError("--dataset imagenet needs --data-dir (a folder of ImageNet validation images)")
        folder = data.imagenet_dir(data_dir, n=n_images, seed=seed)
        if len(folder.images) < n_images:
            raise data.DataNotFoundError(f"--n-images {n_images}: {data_dir} holds only {len(folder.images)} images")
        images = folder.images
        rgb = data.caffe_deprocess(images).astype(np.uint8)
        # Without a label file, explain the model's own prediction as the "true" class.
        labels = np.argmax(model.predict(images, batch_size=8, verbose=0), axis=-1)
        indices = np.arange(len(images))
    else:
        raise ValueError(f"{name} runs on --dataset samples or imagenet, not {dataset!r}")
    inputs = ExperimentInputs(images, labels, indices, CAFFE_INPUT_RANGE)
    weights_text = "ImageNet weights" if weights == "imagenet" else (f"weights {weights}" if weights else "RANDOM weights")
    source = {"imagenet": "Keras' ImageNet weights", None: "random (Keras' initializers)"}.get(weights, "file")
    return Setup(name, keras_xai.model_wo_softmax(model), inputs, rgb, [str(i) for i in range(1000)],
                 CASCADING_STEPS[name], CSC_INJECTION_LAYERS[name], FIRST_CONV_LAYER[name], FIRST_CONV_STEP[name],
                 f"{name} with {weights_text}",
                 _provenance(model, source, weights if source == "file" else None, dataset, data_dir, inputs))


def _lstm_classifier_setup(dataset: str, weights, n_images: int, seed: int) -> Setup:
    if dataset != "mnist":
        raise ValueError(f"lstm_classifier runs on --dataset mnist, not {dataset!r}")
    if weights is None:
        trained = zoo.trained_model("lstm_classifier", "mnist", seed=0)
        model, source = trained.model, trained.metadata.get("source")
        weights_source, weights_file = "the project's trained model", source if source != "trained" else None
    else:
        model, weights_source, weights_file = models.lstm_classifier(), "file", weights
        load_weights_file(model, weights)
    split = data.mnist()
    indices = choose_indices(len(split.test.images), n_images, seed)
    images = training.rows_sequence(split.test.images[indices])  # 28 time steps of 28 pixels
    inputs = ExperimentInputs(images, split.test.labels[indices], indices, (0.0, 1.0))
    name = "lstm_classifier"
    return Setup(name, model, inputs, images, [str(i) for i in range(10)],  # trained on logits: no softmax
                 CASCADING_STEPS[name], CSC_INJECTION_LAYERS[name], FIRST_CONV_LAYER[name], FIRST_CONV_STEP[name],
                 "the thesis' LSTM classifier (2 x LSTM(10) over 28 rows) trained on mnist",
                 _provenance(model, weights_source, weights_file, dataset, None, inputs), SEQUENCE_LAYERS[name])


def build_setup(model: str, dataset: str, n_images: int, seed: int, weights=None, data_dir=None,
                n_fit: int = 0, epochs: int | None = None) -> Setup:
    """The model and ``n_images`` test images for the experiments (``n_fit`` training images for
    methods that learn patterns). ``epochs`` (cifar_net without ``weights``): the cached model trained
    that many epochs of the default recipe (trained on first use; 0: untrained), instead of the default."""
    if epochs is not None and (model != "cifar_net" or weights is not None):
        raise ValueError("epochs selects a training length of the project's cifar_net; it does not apply to "
                         f"{'weights files' if weights is not None else model}")
    if model == "cifar_net":
        return _cifar_net_setup(dataset, weights, n_images, seed, data_dir, n_fit, epochs)
    if model in ("vgg16", "resnet50"):
        return _imagenet_setup(model, dataset, weights, n_images, seed, data_dir)
    if model == "lstm_classifier":
        return _lstm_classifier_setup(dataset, weights, n_images, seed)
    raise ValueError(f"unknown model {model!r}; choose cifar_net, vgg16, resnet50 or lstm_classifier")
