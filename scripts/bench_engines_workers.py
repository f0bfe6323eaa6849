"""Time the worker engines (iNNvestigate 2.1.2, deeplift 0.6.13) next to the native engine.

Appendix-D CIFAR net (random weights, logits), one batch of random images. Per engine and method:
the first call (analyzer creation + first analysis, which builds the package's graph; the engine's
very first call also starts its worker process, reported separately) and the steady state (median
of --repeats calls). Calls of the engines alternate, so the machine's load affects all alike.

    python scripts/bench_engines_workers.py --batch 64 --repeats 5
    python scripts/bench_engines_workers.py --engines innvestigate --methods lrp.z lrp.alpha_1_beta_0
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPOSITORY = Path(__file__).resolve().parents[1]

DEFAULT_METHODS = {
    "native": ["gradient", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a", "deep_taylor"],
    "innvestigate": ["gradient", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a", "deep_taylor",
                     "rect_grad"],
    "deeplift": ["deep_lift.rescale", "deep_lift.reveal_cancel", "deep_lift.ablation"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time keras_xai's innvestigate and deeplift engines (worker processes) and the native "
                    "engine on the appendix-D CIFAR net: first call and steady state.")
    parser.add_argument("--engines", nargs="+", default=list(DEFAULT_METHODS), choices=list(DEFAULT_METHODS))
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="methods to time (default: a representative set per engine); each engine "
                             "times the ones it offers")
    parser.add_argument("--batch", type=int, default=64, help="images per call (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="steady-state calls per method (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPOSITORY))
    import numpy as np

    import keras_xai
    from architectures.models import cifar_net

    model = keras_xai.model_wo_softmax(cifar_net())
    rng = np.random.default_rng(0)
    for layer in model.layers:  # random weights with non-zero biases
        layer.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in layer.get_weights()])
    x = rng.uniform(0, 1, (args.batch, 32, 32, 3)).astype(np.float32)
    offered = {info.name: info.engines for info in keras_xai.list_analyzers()}

    analyzers, rows = [], []
    for engine in args.engines:
        methods = args.methods or DEFAULT_METHODS[engine]
        for method in methods:
            if engine not in offered.get(method, ()):
                continue
            start = time.perf_counter()
            analyzer = keras_xai.create_analyzer(method, model, engine=engine)
            worker = getattr(analyzer, "worker", None)
            started = worker is not None and not worker.alive
            if started:  # time the worker's start separately from the method's first call
                worker.call({"op": "debug", "action": "pid"})
                startup = time.perf_counter() - start
                start = time.perf_counter()
            analyzer.analyze(x)
            first = time.perf_counter() - start
            rows.append({"engine": engine, "method": method, "first_call_s": first,
                         "worker_start_s": startup if started else None, "steady_s": []})
            analyzers.append((rows[-1], analyzer))
    for _ in range(args.repeats):
        for row, analyzer in analyzers:
            start = time.perf_counter()
            analyzer.analyze(x)
            row["steady_s"].append(time.perf_counter() - start)
    header = f"{'engine':13s} {'method':28s} {'steady (median)':>16s} {'first call':>11s} {'worker start':>13s}"
    print(f"appendix-D CIFAR net, batch {args.batch}, {args.repeats} steady-state calls")
    print(header)
    print("-" * len(header))
    for row in rows:
        row["steady_median_s"] = statistics.median(row["steady_s"])
        start = f"{row['worker_start_s']:.1f} s" if row["worker_start_s"] is not None else ""
        print(f"{row['engine']:13s} {row['method']:28s} {row['steady_median_s'] * 1000:13.0f} ms "
              f"{row['first_call_s']:9.2f} s {start:>13s}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
