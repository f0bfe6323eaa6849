"""Benchmark: the paper's CSC and cascading-randomization protocols, native engine vs iNNvestigate engine.

Runs, in one process and on the same images, for each engine:

- CSC: 5 random vectors injected at each of the 5 injection layers of the appendix-D net, propagated
  down with every method (``sanity.experiments.cosine_similarity_convergence``);
- cascading randomization: the maps after each top-down randomization step and their SSIM to the
  original (``sanity.experiments.cascading_randomization``).

Each protocol starts from fresh analyzers, so the times include everything a user waits for (tracing,
the iNNvestigate worker building its graphs, models handed to the worker after each randomization).
The native engine traces once per method (one compiled call serves every injection layer; the next
method is traced while the current one runs) and reads the randomized weights live; the iNNvestigate
engine rebuilds its analyzer for every new set of weights and injection layer. The script prints the
times, the ratio (target: native >= 10x faster per protocol) and the largest difference between the
engines' results, which must be small: both compute the same quantities.

    .venv/bin/python scripts/bench_sanity.py               # 20 images, Gradient, LRP-a1b0, GuidedBP
    .venv/bin/python scripts/bench_sanity.py --n-images 5 --protocols csc
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

import numpy as np  # noqa: E402

from architectures.cache import atomic_write_text  # noqa: E402
from sanity import experiments, methods  # noqa: E402
from sanity.setups import build_setup  # noqa: E402

PROTOCOLS = ("csc", "cascading")


def run_protocol(protocol: str, setup, specs, engine: str, seed: int):
    """(seconds, result) of one protocol on one engine, from fresh analyzers, nothing stored on disk."""
    started = time.perf_counter()
    if protocol == "csc":
        result = experiments.cosine_similarity_convergence(
            setup.model, setup.inputs, specs, setup.injection_layers, n_vectors=5, seed=seed, engine=engine,
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--n-images", type=int, default=20, help="MNIST test images (default 20)")
    parser.add_argument("--methods", default="Gradient,LRP-a1b0,GuidedBP",
                        help="comma-separated method labels of sanity.methods (default: Gradient,LRP-a1b0,GuidedBP)")
    parser.add_argument("--engines", default="native,innvestigate", help="engines to compare, baseline last")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="csc and/or cascading")
    parser.add_argument("--seed", type=int, default=0)
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
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"n_images": len(setup.inputs.indices),
                                                       "methods": [s.label for s in specs], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
