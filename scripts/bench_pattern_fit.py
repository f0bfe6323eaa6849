"""Time PatternNet/PatternAttribution pattern fitting on MNIST for the appendix-D net.

The net is the MNIST-trained appendix-D model from the weight cache (architectures.zoo; trained
once if it is missing) or, with --random-weights, the same architecture untrained. Prints the time
of the first call (tracing + one batch), then the steady-state fit over --n-images training images:
total seconds and images per second.

    python scripts/bench_pattern_fit.py --n-images 10000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from architectures.cli_types import int_in_range, positive_int  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time the streaming pattern fit (PatternNet/PatternAttribution) of keras_xai's "
                    "native engine on MNIST training images for the appendix-D net.")
    parser.add_argument("--n-images", type=int_in_range(1, 60_000), default=10000, help="training images to fit on (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per compiled call (default: %(default)s)")
    parser.add_argument("--method", default="pattern.attribution", choices=["pattern.net", "pattern.attribution"],
                        help="analyzer whose patterns are fitted (the fit is the same for both)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--random-weights", action="store_true",
                        help="use the untrained architecture instead of the cached MNIST-trained model")
    parser.add_argument("--progress", action="store_true", help="show a progress bar while fitting")
    parser.add_argument("--save", type=Path, default=None, help="write the fitted patterns to this .npz file")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.n_images < 1 or args.batch_size < 1:
        parser.error("--n-images and --batch-size must be >= 1")
    return args


def load_model(random_weights: bool):
    """The appendix-D net for MNIST without its softmax, and where its weights came from."""
    import keras_xai
    from architectures import models, zoo

    if random_weights:
        return keras_xai.model_wo_softmax(models.cifar_net(input_shape=(28, 28, 1))), "random weights"
    trained = zoo.trained_model("cifar_net", "mnist", verbose=0)
    return keras_xai.model_wo_softmax(trained.model), trained.metadata.get("source", "cache")


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    import keras_xai
    from architectures import data, training

    model, source = load_model(args.random_weights)
    images = data.mnist().train.images
    if args.n_images > len(images):
        raise SystemExit(f"--n-images {args.n_images} exceeds the {len(images)} MNIST training images")
    x = training.images_to_float(images[:args.n_images]).astype(args.dtype)

    analyzer = keras_xai.create_analyzer(args.method, model, dtype=args.dtype)
    start = time.perf_counter()
    analyzer.fit(x[:args.batch_size], batch_size=args.batch_size)
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    analyzer.fit(x, batch_size=args.batch_size, verbose=args.progress)
    total = time.perf_counter() - start
    results = {
        "method": args.method, "model": f"appendix-D net, MNIST ({source})", "n_images": len(x),
        "batch_size": args.batch_size, "dtype": args.dtype, "first_call_seconds": round(first_call, 3),
        "fit_seconds": round(total, 3), "images_per_second": round(len(x) / total, 1),
        "pattern_layers": {name: list(p.shape) for name, p in analyzer.patterns.items()},
        "zero_pattern_units": {name: int((~np.abs(p.reshape(-1, p.shape[-1])).any(0)).sum())
                               for name, p in analyzer.patterns.items()},
    }
    print(f"model: {results['model']}")
    print(f"first call (tracing + one batch of {args.batch_size}): {first_call:.2f} s")
    print(f"pattern fit on {len(x)} images (batch {args.batch_size}, {args.dtype}): {total:.2f} s, "
          f"{results['images_per_second']:.0f} images/s")
    print("units never active (zero pattern): "
          + ", ".join(f"{name} {count}" for name, count in results["zero_pattern_units"].items()))
    if args.save is not None:
        print(f"patterns written to {analyzer.save_patterns(args.save)}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
