"""Benchmark: all 40 low-rank output layers of the LSTM classifier, two ways, in one run.

1. cached: run the LSTM once to get the last hidden states h of the test set, then every variant is
   one matrix product ``h W_k^T + b`` (``lstm_svd.experiments.lowrank_variants``);
2. keras: for every variant, put ``W_k^T`` into a copy of the model and run ``model.predict`` on the
   test set (the LSTM is recomputed each time).

Both are warmed up first (Keras traces its predict function once). Each is timed ``--repeats`` times
and the fastest run is reported. The script checks that both ways give the same confusion matrices
and prints the times and the speed-up, with and without the one forward pass the cached way needs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from tensorflow import keras  # noqa: E402

from architectures import data, models, training, zoo  # noqa: E402
from architectures.cache import atomic_write_text  # noqa: E402
from architectures.cli_types import int_in_range, positive_int, seed_int  # noqa: E402
from architectures.weights import WeightsFileError, load_weights_file  # noqa: E402
from lstm_svd import experiments, linalg, metrics  # noqa: E402
from lstm_svd.states import HiddenStates, hidden_model, output_layer  # noqa: E402


def cached_states(both: keras.Model, x_test: np.ndarray, y_test: np.ndarray) -> HiddenStates:
    """The one forward pass: ``both`` = ``hidden_model(model)`` returns (h, logits)."""
    hidden, logits = both.predict(x_test, batch_size=1000, verbose=0)
    empty = np.zeros((0, hidden.shape[1]), np.float32)
    return HiddenStates(empty, hidden, np.zeros((0, logits.shape[1]), np.float32), logits, np.zeros(0, np.int64),
                        y_test, np.zeros(0, np.int64), np.arange(len(y_test)))


def keras_variants(model: keras.Model, x_test: np.ndarray, y_test: np.ndarray, variants) -> list:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    dense = clone.get_layer("logits")
    kernel, bias = dense.get_weights()
    confusions = []
    for variant in variants:
        dense.set_weights([linalg.low_rank(kernel, variant.keep).astype(np.float32), bias])
        predicted = np.argmax(clone.predict(x_test, batch_size=1000, verbose=0), axis=1)
        confusions.append(metrics.confusion_matrix(y_test, predicted))
    return confusions


def best_of(repeats: int, function):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="lstm_classifier weights or model file: .h5, .weights.h5, .keras (default: the cached model)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the cached classifier")
    parser.add_argument("--n-test", type=int_in_range(1, 10_000), default=None,
                        help="first N test images (default: all 10,000)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed repetitions of each way (fastest is reported)")
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    if args.weights:
        model = models.lstm_classifier()
        try:
            load_weights_file(model, args.weights)
        except WeightsFileError as error:
            parser.error(str(error))  # exits with status 2 and the message, no traceback
    else:
        model = zoo.trained_model("lstm_classifier", "mnist", seed=args.seed).model
    mnist = data.mnist()
    x_test = training.rows_sequence(mnist.test.images[:args.n_test])
    y_test = mnist.test.labels[:args.n_test]
    layer = output_layer(model)
    variants = experiments.output_layer_variants(min(layer.kernel.shape))

    # warm-up: trace both predict functions and touch every code path once
    both = hidden_model(model)
    cached_states(both, x_test[:1000], y_test[:1000])
    keras_variants(model, x_test[:1000], y_test[:1000], variants[:1])

    states_seconds, states = best_of(args.repeats, lambda: cached_states(both, x_test, y_test))
    products_seconds, results = best_of(args.repeats, lambda: experiments.lowrank_variants(states, layer, variants))
    keras_seconds, keras_confusions = best_of(args.repeats, lambda: keras_variants(model, x_test, y_test, variants))

    differences = [int(np.abs(r.confusion - k).sum()) // 2 for r, k in zip(results, keras_confusions)]
    cached_total = states_seconds + products_seconds
    summary = {
        "n_variants": len(variants), "n_test": len(y_test), "repeats": args.repeats,
        "keras_seconds": keras_seconds, "keras_seconds_per_variant": keras_seconds / len(variants),
        "forward_pass_seconds": states_seconds, "matrix_products_seconds": products_seconds,
        "cached_total_seconds": cached_total,
        "speedup_including_forward_pass": keras_seconds / cached_total,
        "speedup_variants_only": keras_seconds / products_seconds,
        "variants_with_different_predictions": sum(d > 0 for d in differences),
        "max_predictions_moved": max(differences),
    }
    print(f"{len(variants)} low-rank output layers on {len(y_test)} test images (fastest of {args.repeats} runs)")
    print(f"  keras, weights replaced, model rerun per variant : {keras_seconds:8.3f} s "
          f"({1000 * keras_seconds / len(variants):.1f} ms per variant)")
    print(f"  cached: one forward pass for h                   : {states_seconds:8.3f} s")
    print(f"  cached: {len(variants)} matrix products h W_k^T + b          : {products_seconds:8.3f} s")
    print(f"  speed-up, forward pass included                  : {summary['speedup_including_forward_pass']:8.1f}x "
          "(target >= 20x)")
    print(f"  speed-up, variants only (states already cached)  : {summary['speedup_variants_only']:8.1f}x")
    print(f"  same confusion matrices: {len(variants) - summary['variants_with_different_predictions']} of "
          f"{len(variants)} variants (largest difference: {summary['max_predictions_moved']} predictions, "
          "float32 Keras vs float64 products at near-ties)")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
