"""What every ``python -m lstm_svd`` command needs, each part loaded once when first asked for: the
options, the output folder, the MNIST images the analyses use (:class:`Data`), the classifier and its
cached hidden states (:class:`Context`)."""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from architectures.weights import load_weights_file

from . import experiments
from .states import hidden_states, weights_fingerprint


@dataclass
class Data:
    """The images the analyses use (all of MNIST unless --n-train / --n-test ask for random subsets)."""

    x_train: np.ndarray  # float32 (n, 28, 28) rows in [0, 1]
    y_train: np.ndarray
    train_index: np.ndarray  # positions in the full MNIST training set
    x_test: np.ndarray
    y_test: np.ndarray
    test_index: np.ndarray
    raw_train: np.ndarray  # uint8 images
    raw_test: np.ndarray


@dataclass
class Context:
    """What every command needs, loaded once: data, the classifier, its cached hidden states."""

    args: argparse.Namespace
    out: Path
    model_info: dict = field(default_factory=dict)
    _data: Data | None = None
    _model: object = None
    _states: object = None

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(message, flush=True)

    @property
    def progress(self) -> bool:
        return not self.args.quiet

    @property
    def data(self) -> Data:
        if self._data is None:
            from architectures import data, training

            mnist = data.mnist()
            train_index = experiments.subsample(mnist.train.labels, self.args.n_train, self.args.seed)
            test_index = experiments.subsample(mnist.test.labels, self.args.n_test, self.args.seed)
            raw_train, raw_test = mnist.train.images[train_index], mnist.test.images[test_index]
            self._data = Data(training.rows_sequence(raw_train), mnist.train.labels[train_index], train_index,
                              training.rows_sequence(raw_test), mnist.test.labels[test_index], test_index,
                              raw_train, raw_test)
        return self._data

    @property
    def model(self):
        if self._model is None:
            from architectures import models, zoo

            if self.args.weights:
                model = models.lstm_classifier()
                load_weights_file(model, self.args.weights)
                self.model_info = {"source": str(self.args.weights), "recipe": "given weights file"}
            else:
                trained = zoo.trained_model("lstm_classifier", "mnist", recipe=self.args.recipe, seed=self.args.seed,
                                            epochs=self.args.epochs, verbose=0 if self.args.quiet else 1)
                model = trained.model
                meta = trained.metadata
                self.model_info = {"source": meta.get("source"), "recipe": meta["recipe"]["name"],
                                   "recipe_settings": meta["recipe"], "epochs": meta["recipe"]["epochs"],
                                   "cached_test_accuracy": meta.get("test_accuracy")}
            self.model_info["fingerprint"] = weights_fingerprint(model)
            self._model = model
        return self._model

    @property
    def states(self):
        if self._states is None:
            model = self.model  # first: a --weights file that does not fit fails before the data is loaded
            d = self.data
            started = time.perf_counter()
            self._states = hidden_states(model, d.x_train, d.y_train, d.x_test, d.y_test, d.train_index,
                                         d.test_index, cache_dir=self.args.cache_dir, log=self.log)
            self.log(f"hidden states of {len(d.y_train)} training and {len(d.y_test)} test images ready "
                     f"({time.perf_counter() - started:.1f} s; computed once, then read from the cache)")
        return self._states
