"""Benchmark: attributions on the thesis' LSTM classifier (2 x LSTM(10) over 28 rows, Dense(10)), one run.

For a batch of MNIST-shaped images (random weights and pixels: the time does not depend on them), the
steady-state time of each native method next to the plain ``tf.GradientTape`` gradient of the Keras
model (compiled, measured in the same run: the baseline), and of the NumPy float64 reference
implementation of LRP for LSTMs (``tests/native/numpy_lstm.py``, one image at a time, timed on a few
images and scaled to the batch). Target: LRP for LSTMs <= 3x the tape gradient.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "scripts"))
sys.path.insert(0, str(REPOSITORY / "tests" / "native"))  # the NumPy reference

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from architectures.cli_types import positive_int, seed_int  # noqa: E402
from timing import median_seconds  # noqa: E402

METHODS = ("gradient", "input_t_gradient", "lrp.z", "lrp.epsilon", "deep_lift.rescale")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Prints one line per method: ms per batch and the ratio to the tape gradient.")
    parser.add_argument("--batch", type=positive_int, default=256, help="images per batch (default: 256)")
    parser.add_argument("--repeats", type=positive_int, default=7, help="timed calls after the first; median (default 7)")
    parser.add_argument("--reference-images", type=positive_int, default=4,
                        help="images the NumPy reference is timed on (default: 4)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the random weights and images")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras_xai
    from architectures.models import lstm_classifier
    from numpy_lstm import NumpyLSTMClassifier

    model = lstm_classifier()
    rng = np.random.default_rng(args.seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.uniform(size=(args.batch, 28, 28)).astype(np.float32)

    @tf.function
    def tape_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = tf.reduce_max(model(x), axis=1)
        return tape.gradient(selected, x)

    inputs = tf.constant(x)
    baseline = median_seconds(lambda: tape_gradient(inputs).numpy(), args.repeats)
    print(f"LSTM classifier, batch {args.batch}: plain tf.GradientTape gradient {baseline * 1e3:.1f} ms")
    print(f"{'method':<20}{'ms':>10}{'x tape gradient':>18}")
    for method in METHODS:
        analyzer = keras_xai.create_analyzer(method, model)
        seconds = median_seconds(lambda: analyzer.analyze(x), args.repeats)
        print(f"{method:<20}{seconds * 1e3:>10.1f}{seconds / baseline:>18.2f}")
    reference = NumpyLSTMClassifier(model)
    few = x[:args.reference_images].astype(np.float64)
    started = time.perf_counter()
    for image in few:
        reference.lrp(image, int(np.argmax(reference.forward(image)[2])), 1e-7)
    per_image = (time.perf_counter() - started) / len(few)
    print(f"{'NumPy LRP (float64)':<20}{per_image * args.batch * 1e3:>10.1f}{per_image * args.batch / baseline:>18.2f}"
          f"   (one image at a time, {len(few)} timed, scaled to {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
