"""Benchmark: the paper's CSC and cascading-randomization protocols, native engine vs iNNvestigate engine.

Runs, in one process and on the same images, for each engine:

- CSC: 5 random vectors injected at each of the 5 injection layers of the appendix-D net, propagated
  down with every method (``sanity.csc_experiment.cosine_similarity_convergence``);
- cascading randomization: the maps after each top-down randomization step and their SSIM to the
  original (``sanity.experiments.cascading_randomization``).

Each protocol starts from fresh analyzers, so the times include everything a user waits for (tracing,
the iNNvestigate worker building its graphs, models handed to the worker after each randomization).
The native engine traces once per method (one compiled call serves every injection layer; the next
method is traced while the current one runs) and reads the randomized weights live; the iNNvestigate
engine rebuilds its analyzer for every new set of weights and injection layer. The script prints the
times, the ratio (target: native >= 10x faster per protocol) and the largest difference between the
engines' results, which must be small: both compute the same quantities.

``--breakdown`` then times the native CSC protocol's parts one after another, in CPU seconds (all
threads): drawing the vectors, and per method the analyzer's creation, the trace, the first call (every
injection in one call, as the protocol does while the results fit its per-call budget, as here) and the
statistics; and the arithmetic of the passes (the input-gradient products of every Conv2D and Dense
layer at or below each injection, and the forward pass) at the best FP32 rate TF's kernels reach here
(``bench_bounds.py``), in seconds on all cores. The CPU sum divided by the cores is what the protocol
would take if every part kept all cores busy and cost the same CPU as alone.

    .venv/bin/python scripts/bench_sanity.py               # 20 images, Gradient, LRP-a1b0, GuidedBP
    .venv/bin/python scripts/bench_sanity.py --n-images 5 --protocols csc
    .venv/bin/python scripts/bench_sanity.py --protocols csc --breakdown
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from architectures.cache import atomic_write_text  # noqa: E402
from sanity import csc_experiment, csc_schedule, experiment_inputs, experiments, methods  # noqa: E402
from sanity.setups import build_setup  # noqa: E402

PROTOCOLS = ("csc", "cascading")
N_VECTORS = 5  # injected per image and layer (the paper's CSC protocol)


def run_protocol(protocol: str, setup, specs, engine: str, seed: int):
    """(seconds, result) of one protocol on one engine, from fresh analyzers, nothing stored on disk."""
    started = time.perf_counter()
    if protocol == "csc":
        result = csc_experiment.cosine_similarity_convergence(
            setup.model, setup.inputs, specs, setup.injection_layers, n_vectors=N_VECTORS, seed=seed, engine=engine,
            chunk_size=len(setup.inputs.indices), progress=False, log=lambda *_: None)
    else:
        result = experiments.cascading_randomization(
            setup.model, setup.inputs, specs, setup.cascading_steps, seed=seed, engine=engine,
            chunk_size=len(setup.inputs.indices), progress=False, log=lambda *_: None)
    return time.perf_counter() - started, result


def difference(protocol: str, a, b) -> float:
    """Largest disagreement: |median CSC| per method, injection and layer, or |SSIM| per image and step."""
    if protocol == "cascading":
        return float(np.nanmax(np.abs(a.ssim - b.ssim)))
    worst = 0.0
    for method in a.methods:
        for injection in a.injection_layers:
            sa, sb = a.summary(method, injection), b.summary(method, injection)
            for layer in set(sa) & set(sb):
                worst = max(worst, abs(sa[layer]["median"] - sb[layer]["median"]))
    return worst


def csc_pass_flops(model, injection_layers, n_images: int, n_vectors: int, macs: dict) -> float:
    """Floating-point operations (2 per multiply-add) of one method's CSC call, at least: the forward
    pass on the images up to the highest injection, and for each injection the input-gradient product
    of every Conv2D and Dense layer at or below it, once per injected vector (``macs``: multiply-adds
    per row per layer)."""
    order = [layer.name for layer in model.layers]
    unknown = sorted(set(injection_layers) - set(order))
    if unknown:
        raise ValueError(f"injection layers {unknown} are not layers of {model.name!r}")
    top = max(order.index(name) for name in injection_layers)
    total = n_images * sum(m for layer, m in macs.items() if order.index(layer) <= top)
    for name in injection_layers:
        depth = order.index(name)
        total += n_images * n_vectors * sum(m for layer, m in macs.items() if order.index(layer) <= depth)
    return 2.0 * total


def _cpu_seconds(call) -> tuple:
    """(result, CPU seconds of the whole process, user + system) of ``call()``."""
    def used():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    before = used()
    result = call()
    return result, used() - before


def _bench_bounds():
    """``scripts/bench_bounds.py`` as a module: its multiply-add count and FP32 rate measurement."""
    spec = importlib.util.spec_from_file_location("bench_bounds", Path(__file__).with_name("bench_bounds.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def csc_breakdown(setup, specs, seed: int, n_vectors: int = N_VECTORS) -> dict:
    """CPU seconds of the native CSC protocol's parts, one after another, from fresh analyzers; and the
    least time the passes' arithmetic takes at the best rate TF's kernels reach here (all cores)."""
    positions = list(range(len(setup.inputs.indices)))
    x = setup.inputs.images[positions]
    shapes = {name: csc_schedule.sample_shape(setup.model, name) for name in setup.injection_layers}
    pool = experiment_inputs.AnalyzerPool(setup.model, setup.inputs, "native")
    injected, draw = _cpu_seconds(lambda: csc_experiment.injected_vectors(
        setup.inputs, positions, setup.injection_layers, shapes, n_vectors, seed))
    shaped = {name: np.broadcast_to(np.float32(0), vectors.shape) for name, vectors in injected.items()}
    parts = {"draw the vectors": draw}
    for spec in specs:
        analyzer, parts[f"{spec.label} create"] = _cpu_seconds(lambda: pool.get(spec))
        _, parts[f"{spec.label} trace"] = _cpu_seconds(lambda: analyzer.prepare_propagate_from_layers(x, shaped))
        propagated, parts[f"{spec.label} first call"] = _cpu_seconds(
            lambda: analyzer.propagate_from_layers(x, injected, copy=False))
        _, parts[f"{spec.label} statistics"] = _cpu_seconds(lambda: [
            list(csc_experiment.injection_histograms(results, len(positions), n_vectors))
            for results in propagated.values()])
        del propagated
    bounds = _bench_bounds()
    macs = bounds.layer_macs(setup.model)
    peak = max(bounds.measure_peak(setup.model).values())
    flops = csc_pass_flops(setup.model, setup.injection_layers, len(positions), n_vectors, macs)
    return {"cpu_s": parts, "cpu_total_s": sum(parts.values()), "cores": len(os.sched_getaffinity(0)),
            "statistics_cpu_s": sum(v for k, v in parts.items() if k.endswith("statistics")),
            "gflop_per_method": flops / 1e9, "peak_gflops_per_s": peak,
            "arithmetic_s": len(specs) * flops / (peak * 1e9)}


def print_breakdown(result: dict, protocol_s: float | None, target_s: float | None) -> None:
    print("\nnative CSC protocol, its parts one after another (CPU seconds, all threads):")
    for part, seconds in result["cpu_s"].items():
        print(f"  {part:28s} {seconds:6.3f}")
    total, statistics, cores = result["cpu_total_s"], result["statistics_cpu_s"], result["cores"]
    print(f"  {'sum':28s} {total:6.3f}  -> {total / cores:.2f} s on {cores} cores if every part kept them all "
          f"busy at the same CPU cost; without the statistics {(total - statistics) / cores:.2f} s")
    print(f"  arithmetic of the passes: {result['gflop_per_method']:.1f} GFLOP per method at "
          f"{result['peak_gflops_per_s']:.0f} GFLOP/s (all cores) = {result['arithmetic_s']:.2f} s for all "
          f"methods, {cores * result['arithmetic_s']:.2f} CPU s of the first calls")
    if protocol_s is not None:
        print(f"  protocol measured above: {protocol_s:.2f} s" +
              ("" if target_s is None else f"; target (baseline / 10): {target_s:.2f} s"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--n-images", type=int, default=20, help="MNIST test images (default 20)")
    parser.add_argument("--methods", default="Gradient,LRP-a1b0,GuidedBP",
                        help="comma-separated method labels of sanity.methods (default: Gradient,LRP-a1b0,GuidedBP)")
    parser.add_argument("--engines", default="native,innvestigate", help="engines to compare, baseline last")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="csc and/or cascading")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the native CSC protocol's parts and the arithmetic of its passes")
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = parser.parse_args(argv)

    engines = args.engines.split(",")
    protocols = [p for p in args.protocols.split(",") if p]
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        parser.error(f"unknown protocol(s) {unknown}; choose from {PROTOCOLS}")
    specs = methods.by_label(args.methods.split(","))
    for engine in engines:
        usable, missing = methods.available(specs, engine)
        if missing:
            parser.error(f"engine {engine!r} does not offer {[s.label for s in missing]}")
    setup = build_setup("cifar_net", "mnist", args.n_images, args.seed)
    print(f"{setup.description}; {len(setup.inputs.indices)} images; methods {[s.label for s in specs]}; "
          f"CSC: {len(setup.injection_layers)} injection layers x 5 vectors; cascading: "
          f"{len(setup.cascading_steps)} steps", flush=True)

    rows = []
    header = f"{'protocol':<10} " + " ".join(f"{e + ' s':>16}" for e in engines) + f" {'ratio':>8} {'max diff':>10}"
    print(header)
    for protocol in protocols:
        timed = {engine: run_protocol(protocol, setup, specs, engine, args.seed) for engine in engines}
        baseline, ours = engines[-1], engines[0]
        ratio = timed[baseline][0] / timed[ours][0]
        diff = difference(protocol, timed[ours][1], timed[baseline][1]) if len(engines) > 1 else 0.0
        rows.append({"protocol": protocol, "seconds": {e: t for e, (t, _) in timed.items()},
                     "ratio": ratio, "max_difference": diff})
        print(f"{protocol:<10} " + " ".join(f"{timed[e][0]:>16.2f}" for e in engines)
              + f" {ratio:>7.1f}x {diff:>10.2e}", flush=True)
    print(f"ratio = {engines[-1]} time / {engines[0]} time (target >= 10x); max diff: largest difference of "
          "the results between the first and the last engine (CSC medians, SSIM values)")
    breakdown = None
    if args.breakdown:
        breakdown = csc_breakdown(setup, specs, args.seed)
        csc_row = next((row for row in rows if row["protocol"] == "csc"), None)
        protocol_s = None if csc_row is None else csc_row["seconds"].get("native")
        baseline = engines[-1]
        target_s = None if csc_row is None or baseline == "native" else csc_row["seconds"][baseline] / 10
        print_breakdown(breakdown, protocol_s, target_s)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"n_images": len(setup.inputs.indices),
                                                       "methods": [s.label for s in specs], "rows": rows,
                                                       "csc_breakdown": breakdown}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
