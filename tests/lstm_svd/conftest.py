"""A tiny trained LSTM classifier shared by the lstm_svd tests (seconds to train, no cached model needed)."""
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class TinySetup:
    model: object
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    weights_path: object


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinySetup:
    """lstm_classifier trained for 1 epoch on 2000 MNIST images (about 50% test accuracy: a real,
    imperfect classifier whose low-rank variants behave non-trivially)."""
    from architectures import data, models, training

    mnist = data.mnist()
    x_train = training.rows_sequence(mnist.train.images[:2000])
    y_train = mnist.train.labels[:2000]
    x_test = training.rows_sequence(mnist.test.images[:1000])
    y_test = mnist.test.labels[:1000]
    model = models.lstm_classifier()
    recipe = training.get_recipe("lstm_classifier", "thesis").with_epochs(1)
    training.fit(model, x_train, y_train, recipe, seed=0, from_logits=True, verbose=0)
    from keras_xai.graph import weights_suffix

    path = tmp_path_factory.mktemp("tiny") / f"tiny_lstm{weights_suffix(model)}"
    model.save_weights(str(path))
    return TinySetup(model, x_train, y_train, x_test, y_test, path)


@pytest.fixture(scope="session")
def tiny_states(tiny):
    from lstm_svd.states import compute_hidden_states

    return compute_hidden_states(tiny.model, tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test)
