"""The fastest a first call could be on this machine, against the first-call targets still open.

Issue 3 asks the native engine's first call (analyzer creation + first analysis) to be >= 4x faster than
plain iNNvestigate's, issue 4 DeepLIFT's >= 10x faster than the deeplift package's. For the methods whose
first call is mostly arithmetic, the arithmetic alone may take longer than the target allows. This
script measures that, everything in one run on the net and batch of ``bench_engine.py`` (appendix-D
CIFAR net, 64 images, random weights):

- work: the multiply-adds of direct convolutions and matrix products (the algorithms TF's CPU kernels
  use; no Winograd-type kernel here), counted from the net's Conv2D and Dense layers as
  ``rows x conv-equivalents per layer``. Counted generously: the first and the last layer are left out
  everywhere (linearity lets an implementation share their work between rows), so the true work is
  larger. Conv-equivalents per layer and row:
    * gradient-based (integrated_gradients, smoothgrad, deep_lift.rescale): 2, the forward product and
      the input-gradient product;
    * deep_lift.reveal_cancel: 4. The positive and negative parts of the output difference are
      W+ d+ + W- d- and W+ d- + W- d+, linear in the input difference's parts (d+, d-); W d and
      |W| |d| are the fewest products that give both, and the multipliers going down need W^T and
      |W|^T products again. (Counted without a forward product on x, whose output difference these
      two products also give up to rounding; the native engine runs it too: 5.)
    * deep_lift.ablation: 4, the same two forward products, W+^T m+ and W-^T m- back.
- peak: the best FP32 rate TF's kernels reach on this machine now, the fastest of Conv2D forward,
  Conv2D input-gradient and MatMul on the net's own layer shapes with large batches (a 64-row pass
  runs slower);
- fixed: the least TensorFlow charges a first call for tracing and instantiating a pass: first call minus
  steady call of a fresh tf.function computing the plain tf.GradientTape gradient of the same net, the
  smallest pass there is (lowest of three);
- bound = work / peak + fixed, against target = the baseline's first call, measured now, / the factor.

Where bound > target, the target is out of reach on this machine with TF's kernels. The script also
times our own first call, for comparison with the bound.

    python scripts/bench_bounds.py                                  # all five methods, ~2 minutes
    python scripts/bench_bounds.py --methods deep_lift.reveal_cancel --no-baselines
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SCRIPTS = Path(__file__).resolve().parent
REPOSITORY = SCRIPTS.parent

#: method -> (baseline engine of bench_engine.py, required first-call factor, conv-equivalents per
#: layer and row, rows per image: the 64 steps / copies of the augmented methods).
TARGETS = {
    "integrated_gradients": ("package", 4, 2, 64),
    "smoothgrad": ("package", 4, 2, 64),
    "deep_lift.rescale": ("deeplift", 10, 2, 1),
    "deep_lift.reveal_cancel": ("deeplift", 10, 4, 1),
    "deep_lift.ablation": ("deeplift", 10, 4, 1),
}


sys.path.insert(0, str(SCRIPTS))  # bench_engine (its net and timers: both scripts measure alike), timing
import bench_engine  # noqa: E402
from timing import median_seconds, seconds  # noqa: E402


def layer_macs(model) -> dict:
    """Multiply-adds per row of every Conv2D and Dense layer, in model order: ``{name: macs}``.

    A Conv2D's input gradient has the same multiply-adds as its forward product (each pair of an
    output position and a kernel tap meets once either way), so this counts both.
    """
    import numpy as np

    from keras_xai import graph
    layers = graph.keras_of(model).layers  # the model's own Keras (2 or 3)
    macs = {}
    for layer in model.layers:
        if type(layer) is layers.Conv2D:  # not its subclasses (transposed, depthwise)
            if layer.data_format != "channels_last":
                raise ValueError(f"layer {layer.name!r}: only channels_last Conv2D is counted")
            _, height, width, out_channels = graph.output_shape(model, layer.name)
            kernel_height, kernel_width, in_per_group, _ = layer.kernel.shape
            macs[layer.name] = height * width * out_channels * kernel_height * kernel_width * in_per_group
        elif isinstance(layer, layers.Dense):  # on the last axis: once per leading position
            positions = int(np.prod(graph.shape_of(layer.input)[1:-1]))
            macs[layer.name] = positions * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif layer.count_params() and not isinstance(layer, layers.BatchNormalization):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has weights but no multiply-add "
                             "count here; only Conv2D, Dense and BatchNormalization are known")
    return macs


def inner_macs(macs: dict) -> int:
    """Multiply-adds per row of the layers between the first and the last weighted one."""
    values = list(macs.values())
    return int(sum(values[1:-1]))


def work_flops(method: str, macs: dict, batch: int) -> float:
    """Floating-point operations (2 per multiply-add) of ``method`` on a batch, at least (see the docstring)."""
    _, _, products, rows_per_image = TARGETS[method]
    return 2.0 * batch * rows_per_image * products * inner_macs(macs)


def measure_peak(model, rows: int = 256, repeats: int = 5) -> dict:
    """``{kernel: GFLOP/s}`` for the forward and input-gradient products of every Conv2D and the MatMul
    of every Dense layer of ``model``, on ``rows`` rows (Dense: 16x as many), plus a 2048^3 MatMul."""
    import numpy as np
    import tensorflow as tf

    from keras_xai import graph
    dense = graph.keras_of(model).layers.Dense
    rng = np.random.default_rng(0)
    rates = {}
    macs = layer_macs(model)
    for layer in model.layers:
        if layer.name not in macs:
            continue
        kernel = tf.constant(layer.kernel.numpy())
        if isinstance(layer, dense):
            x = tf.constant(rng.standard_normal((16 * rows, kernel.shape[0])).astype(np.float32))
            matmul = tf.function(lambda x, k=kernel: tf.matmul(x, k), autograph=False)
            rates[f"{layer.name} matmul"] = 2 * macs[layer.name] * 16 * rows / median_seconds(
                lambda: matmul(x).numpy(), repeats) / 1e9
            continue
        x = tf.constant(rng.standard_normal((rows, *graph.shape_of(layer.input)[1:])).astype(np.float32))
        out_shape = (rows, *graph.output_shape(model, layer.name)[1:])
        dy = tf.constant(rng.standard_normal(out_shape).astype(np.float32))
        strides, padding = (1, *layer.strides, 1), layer.padding.upper()
        forward = tf.function(lambda x, k=kernel: tf.nn.conv2d(x, k, strides, padding), autograph=False)
        backward = tf.function(lambda dy, k=kernel, shape=x.shape: tf.nn.conv2d_transpose(
            dy, k, shape, strides, padding), autograph=False)
        flops = 2 * macs[layer.name] * rows
        rates[f"{layer.name} forward"] = flops / median_seconds(lambda: forward(x).numpy(), repeats) / 1e9
        rates[f"{layer.name} input gradient"] = flops / median_seconds(lambda: backward(dy).numpy(), repeats) / 1e9
    a = tf.constant(rng.standard_normal((2048, 2048)).astype(np.float32))
    square = tf.function(lambda a: tf.matmul(a, a), autograph=False)
    rates["2048^3 matmul"] = 2 * 2048 ** 3 / median_seconds(lambda: square(a).numpy(), repeats) / 1e9
    return rates


def measure_fixed_cost(bench, model, x, tries: int = 3) -> float:
    """Least first-call overhead of a pass: a fresh tf.function of the plain gradient, first call minus
    its median steady call, lowest of ``tries`` (after one untimed try that creates the kernels)."""
    costs = []
    for attempt in range(tries + 1):
        gradient = bench.tape_gradient_function(model)  # a new tf.function: traced again
        first = seconds(lambda: gradient(x))
        steady = median_seconds(lambda: gradient(x), 3)
        if attempt:
            costs.append(max(0.0, first - steady))
    return min(costs)


def first_calls(bench, engine: str, methods, model, x, folder: Path) -> dict:
    """``{method: first-call seconds}`` on one engine of ``bench_engine.py`` (``package``: plain iNNvestigate)."""
    timer = bench.PackageTimer(model, x, folder) if engine == "package" else bench.EngineTimer(engine, model, x)
    try:
        seconds = {}
        for method in methods:
            print(f"  first call of {method} on {engine} ...", flush=True)
            seconds[method] = timer.build(method)[0]
        return seconds
    finally:
        if engine == "package":
            timer.close()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--methods", nargs="+", default=list(TARGETS), choices=list(TARGETS), metavar="NAME",
                        help=f"methods to bound, from {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the baselines' first calls (no iNNvestigate or deeplift process)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPOSITORY))
    import numpy as np

    bench = bench_engine
    model = bench.build_model(args.seed)
    x = np.random.default_rng(args.seed).uniform(0, 1, (args.batch, 32, 32, 3)).astype(np.float32)
    macs = layer_macs(model)
    print(f"appendix-D CIFAR net, batch {args.batch}; multiply-adds per row: "
          + ", ".join(f"{name} {value / 1e6:.1f}M" for name, value in macs.items()), flush=True)
    print("measuring the FP32 rate of TF's kernels here ...", flush=True)
    rates = measure_peak(model)
    best_kernel = max(rates, key=rates.get)
    peak = rates[best_kernel]
    fixed = measure_fixed_cost(bench, model, x)
    print("GFLOP/s: " + ", ".join(f"{kernel} {rate:.0f}" for kernel, rate in rates.items()))
    print(f"peak {peak:.0f} GFLOP/s ({best_kernel}); fixed first-call cost {fixed * 1e3:.0f} ms", flush=True)

    ours = first_calls(bench, "native", args.methods, model, x, Path())
    baselines = {}
    if not args.no_baselines:
        with tempfile.TemporaryDirectory() as folder:
            for engine in bench.runnable_engines(sorted({TARGETS[m][0] for m in args.methods}), model):
                chosen = [m for m in args.methods if TARGETS[m][0] == engine]
                baselines.update(first_calls(bench, engine, chosen, model, x, Path(folder)))

    rows = []
    for method in args.methods:
        engine, factor, products, per_image = TARGETS[method]
        work = work_flops(method, macs, args.batch)
        bound = work / (peak * 1e9) + fixed
        target = baselines[method] / factor if method in baselines else None
        rows.append({"method": method, "baseline_engine": engine, "factor": factor,
                     "conv_equivalents": products, "rows": args.batch * per_image, "gflop": work / 1e9,
                     "bound_s": bound, "baseline_first_s": baselines.get(method), "target_s": target,
                     "ours_first_s": ours[method],
                     "reachable": None if target is None else bool(bound <= target)})
    print()
    header = (f"{'method':24s} {'rows':>5s} {'x/layer':>7s} {'GFLOP':>7s} {'bound s':>8s} {'baseline s':>10s} "
              f"{'target s':>9s} {'ours s':>7s}  verdict")
    print(header)
    print("-" * len(header))
    for row in rows:
        baseline = "-" if row["baseline_first_s"] is None else f"{row['baseline_first_s']:.2f}"
        target = "-" if row["target_s"] is None else f"{row['target_s']:.3f}"
        verdict = {None: "no baseline measured", True: "reachable in principle",
                   False: "out of reach here (bound > target)"}[row["reachable"]]
        print(f"{row['method']:24s} {row['rows']:5d} {row['conv_equivalents']:7d} {row['gflop']:7.1f} "
              f"{row['bound_s']:8.3f} {baseline:>10s} {target:>9s} {row['ours_first_s']:7.3f}  {verdict}")
    print(f"bound = GFLOP / {peak:.0f} GFLOP/s + {fixed * 1e3:.0f} ms; target = baseline first call / factor "
          "(4x plain iNNvestigate, 10x the deeplift package); x/layer = conv-equivalents per layer and row.")
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "macs_per_row": macs, "gflops_per_s": rates,
                                         "peak_gflops_per_s": peak, "fixed_s": fixed, "methods": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
