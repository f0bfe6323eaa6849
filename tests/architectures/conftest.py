"""The lstm_classifier built in a second Keras of this process, for tests of stack-neutral files."""
import pytest


@pytest.fixture
def other_keras():
    """tf-keras (Keras 2) when tf.keras is Keras 3 (today's stack); skipped where there is only one Keras."""
    from tensorflow import keras

    from keras_xai.graph import keras_major

    if keras_major(keras.layers.Dense) < 3:
        pytest.skip("one Keras in this environment (Keras 2, no Keras 3)")
    return pytest.importorskip("tf_keras")


@pytest.fixture
def twin_lstm_classifier(other_keras):
    """Builds ``architectures.models.lstm_classifier()`` layer for layer, names included, in ``other_keras``."""

    def build(hidden_size: int = 10):
        layers = other_keras.layers
        return other_keras.Sequential([
            other_keras.Input(shape=(28, 28), name="rows"),
            layers.LSTM(hidden_size, return_sequences=True, name="lstm1"),
            layers.LSTM(hidden_size, name="lstm2"),
            layers.Dense(10, name="logits"),
        ], name="lstm_classifier")

    return build
