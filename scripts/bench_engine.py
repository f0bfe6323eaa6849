"""Benchmark every engine of keras_xai on the appendix-D CIFAR net: one table, steady state and first call.

Per method (appendix-D CIFAR net, 32x32x3, random weights, explained before the softmax), one
column per engine that offers it:

- ``native``: keras_xai's eager TF2 engine;
- ``innvestigate``: ``engine="innvestigate"`` (iNNvestigate 2.1.2 in a worker process);
- ``deeplift``: ``engine="deeplift"`` (deeplift 0.6.13 in a worker process);
- ``package``: plain iNNvestigate 2.1.2 (``innvestigate.create_analyzer`` in graph mode, in its own
  process), the baseline the native engine is measured against;

plus the plain tf.GradientTape gradient (compiled with tf.function). Steady state is the median of
--repeats calls, made in turn for all engines so that the machine's load affects them alike; the
first call is analyzer creation + first analysis (trace / graph build; a worker's own start-up is
reported separately, and ``pattern.*`` methods are fitted on the batch before, not counted).

Targets: native <= package for every method; native first call >= 4x faster than the package's;
alpha-beta <= 2.5x the plain gradient; DeepLIFT (not in iNNvestigate 2.x): native faster than the
deeplift package in steady state and >= 10x faster in the first call.

    python scripts/bench_engine.py --methods gradient lrp.z lrp.alpha_1_beta_0 --batch 64 --repeats 7
    python scripts/bench_engine.py --engines native deeplift --methods deep_lift.rescale --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers, however we are loaded
from timing import middle, seconds  # noqa: E402

#: Engines in table order; "package" is plain iNNvestigate (not a keras_xai engine).
ENGINES = ("native", "innvestigate", "deeplift", "package")
#: Column titles.
TITLES = {"native": "native", "innvestigate": "iNNv eng", "deeplift": "deeplift", "package": "iNNv pkg"}
#: Methods that average over 64 modified copies of the batch.
AUGMENTED = ("integrated_gradients", "smoothgrad")
#: Parameters some methods need (the same for every engine).
METHOD_PARAMS = {"deep_taylor.bounded": {"low": 0.0, "high": 1.0}, "lrp.alpha_beta": {"alpha": 2.0, "beta": 1.0}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time keras_xai's engines (native, innvestigate, deeplift), plain iNNvestigate 2.1.2 "
                    "and a plain tf.GradientTape gradient on the appendix-D CIFAR net: steady state and "
                    "first call, one table.",
        epilog="Methods with an input augmentation (integrated_gradients, smoothgrad) run 64 copies of "
               "the batch per call, so they take about 64 gradient times. A method an engine does not "
               "offer leaves its cell empty; one that fails to build is skipped with the reason.")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="methods to time (default: every registered method some chosen engine offers)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES, metavar="ENGINE",
                        help=f"engines to time, from {', '.join(ENGINES)} ('package' is plain iNNvestigate; "
                             "default: all)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed calls per method after the first; the median is reported (default: %(default)s)")
    parser.add_argument("--augmented-repeats", type=int, default=2,
                        help="timed calls for integrated_gradients and smoothgrad (default: %(default)s)")
    parser.add_argument("--no-innvestigate", action="store_true",
                        help="leave out the innvestigate engine and the plain package (no iNNvestigate process)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    parser.add_argument("--innvestigate-worker", nargs=2, metavar=("MODEL", "INPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.batch, args.repeats, args.augmented_repeats) < 1:
        parser.error("--batch, --repeats and --augmented-repeats must be >= 1")
    if args.no_innvestigate:
        args.engines = [e for e in args.engines if e not in ("innvestigate", "package")]
    return args


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:160]


# --- plain iNNvestigate, in its own process (graph mode is process-wide) --------------------------

def innvestigate_worker(model_path: str, input_path: str) -> None:
    """Serve requests on stdin: ``names`` (the package's analyzers), ``build METHOD`` (fresh graph,
    create, first call) and ``call`` (one timed call); each answer is one ``RESULT {json}`` line on
    stdout, with ``names``, ``seconds`` or ``error``."""
    import numpy as np
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    import innvestigate

    x = np.load(input_path)
    analyzer = None
    for line in sys.stdin:
        command, _, method = line.strip().partition(" ")
        if command == "quit":
            break
        if command == "names":
            print("RESULT " + json.dumps({"names": sorted(innvestigate.analyzer.analyzers)}), flush=True)
            continue
        start = time.perf_counter()
        try:
            if command == "build":
                analyzer = None
                if method not in innvestigate.analyzer.analyzers:
                    raise ValueError(f"iNNvestigate 2.1.2 has no analyzer {method!r}")
                tf.keras.backend.clear_session()  # a fresh graph: earlier analyzers must not slow this one
                model = tf.keras.models.load_model(model_path, compile=False)
                analyzer = innvestigate.create_analyzer(method, model, **METHOD_PARAMS.get(method, {}))
            analyzer.analyze(x)
            answer = {"seconds": time.perf_counter() - start}
        except Exception as error:  # reported as a skipped cell, the next method goes on
            answer = {"error": _reason(error)}
        print("RESULT " + json.dumps(answer), flush=True)


class PackageTimer:
    """Plain iNNvestigate in a subprocess, driven call by call so that its measurements interleave
    with the engines' (the machine's load then affects all alike)."""

    def __init__(self, model, x, folder: Path):
        import numpy as np
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(folder / "model.h5", save_format="h5")
        np.save(folder / "x.npy", x)
        start = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--innvestigate-worker", str(folder / "model.h5"), str(folder / "x.npy")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.names = set(self._ask("names"))  # waits for TensorFlow and iNNvestigate to load
        self.startup = time.perf_counter() - start

    def offers(self, method: str, engines: tuple) -> bool:
        return method in self.names

    def _ask(self, command: str):
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith("RESULT "):
                answer = json.loads(line[len("RESULT "):])
                if "error" in answer:
                    raise RuntimeError(answer["error"])
                return answer.get("seconds", answer.get("names"))
        raise RuntimeError(f"the iNNvestigate process stopped (exit code {self._process.wait()})")

    def build(self, method: str) -> tuple:
        """(first call seconds, a function timing one more call)."""
        return self._ask(f"build {method}"), lambda: self._ask("call")

    def close(self):
        if self._process.poll() is None:
            self._process.stdin.write("quit\n")
            self._process.stdin.close()
            self._process.wait(timeout=60)


# --- keras_xai's engines ------------------------------------------------------------------------

def build_model(seed: int):
    import numpy as np
    from architectures.models import cifar_net

    import keras_xai
    model = cifar_net()
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # random weights with non-zero biases
        layer.set_weights([rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])) if w.ndim > 1 else 0.05, w.shape)
                           .astype(np.float32) for w in layer.get_weights()])
    return keras_xai.model_wo_softmax(model)


def tape_gradient_function(model):
    """The plain gradient of the maximal logit, compiled: the baseline every method is compared to."""
    import tensorflow as tf

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = tf.reduce_max(model(x), axis=1)
        return tape.gradient(selected, x)

    return lambda x: gradient(tf.constant(x)).numpy()


def start_worker(engine: str) -> float:
    """Start a worker engine's process (if it is not running) and return the seconds it took."""
    from keras_xai.engines import deeplift_engine, get_worker, innvestigate_engine
    analyzer_class = {"innvestigate": innvestigate_engine.InnvestigateAnalyzer,
                      "deeplift": deeplift_engine.DeepLiftAnalyzer}[engine]
    worker = get_worker(engine, analyzer_class.worker_module)
    return seconds(lambda: worker.call({"op": "debug", "action": "pid"}))


class EngineTimer:
    """One keras_xai engine: analyzers created on request, worker start-up timed on first use."""

    def __init__(self, engine: str, model, x):
        self.engine, self.model, self.x = engine, model, x
        self.startup = None
        self.fit_seconds = {}

    def offers(self, method: str, engines: tuple) -> bool:
        return self.engine in engines

    def build(self, method: str) -> tuple:
        import keras_xai
        if self.engine != "native" and self.startup is None:
            self.startup = start_worker(self.engine)
        start = time.perf_counter()
        analyzer = keras_xai.create_analyzer(method, self.model, engine=self.engine, **METHOD_PARAMS.get(method, {}))
        created = time.perf_counter() - start
        if hasattr(analyzer, "fit"):  # PatternNet / PatternAttribution learn their patterns first
            self.fit_seconds[method] = seconds(lambda: analyzer.fit(self.x))
        first = created + seconds(lambda: analyzer.analyze(self.x))
        return first, lambda: seconds(lambda: analyzer.analyze(self.x))


def runnable_engines(engines, model) -> list:
    """The engines this stack can run ``model`` on; the others are left out with the reason
    (iNNvestigate and deeplift exist on the reproduction stack only)."""
    from keras_xai.engines.base import EngineUnavailableError, check_reference_engine
    kept = []
    for engine in engines:
        try:
            if engine != "native":  # "package" is plain iNNvestigate
                check_reference_engine("innvestigate" if engine == "package" else engine, model)
            kept.append(engine)
        except (EngineUnavailableError, ValueError) as error:
            print(f"leaving out {engine}: {str(error).split('; ')[0]}", flush=True)  # the why, not the how-to
    return kept


def time_method(method: str, timers: dict, offered: tuple, repeats: int, tape_call) -> dict:
    """First call and median steady-state seconds of every engine offering ``method`` and of the
    tape gradient, one call of each in turn."""
    row = {"method": method, "first": {}, "steady": {}, "skipped": {}}
    calls = {}
    for engine, timer in timers.items():
        if not timer.offers(method, offered):
            continue
        try:
            row["first"][engine], calls[engine] = timer.build(method)
        except Exception as error:  # a method that cannot be built here is reported, not fatal
            row["skipped"][engine] = _reason(error)
            print(f"  skipped {method} on {engine}: {row['skipped'][engine]}", flush=True)
    times = {engine: [] for engine in calls}
    tape = []
    for _ in range(repeats):
        for engine, call in calls.items():
            times[engine].append(call())
        tape.append(seconds(tape_call))
    row["steady"] = {engine: middle(values) for engine, values in times.items()}
    row["tape"] = middle(tape)
    return row


# --- the table ------------------------------------------------------------------------------------

def _ratio(a, b):
    return a / b if a is not None and b else None


def _cell(value, fmt, width):
    return f"{'-':>{width}s}" if value is None else format(value, f"{width}{fmt}")


#: The package the native engine is measured against, and the first-call speed-up it must reach:
#: plain iNNvestigate (issue 3) or, where iNNvestigate has no such method, deeplift (issue 4).
FIRST_CALL_TARGETS = {"package": 4, "deeplift": 10}


def baseline(row) -> str:
    """The baseline engine of a table row: plain iNNvestigate where it ran the method, else deeplift."""
    return next((e for e in FIRST_CALL_TARGETS if row["steady"].get(e) is not None), "package")


def build_seconds(row, engine):
    """First call minus one steady call: the trace / graph build (None when not measured or not positive)."""
    first, steady = row["first"].get(engine), row["steady"].get(engine)
    if first is None or steady is None or first - steady <= 0:
        return None
    return first - steady


def print_table(rows, engines, startups, tape_first):
    titles = " ".join(f"{TITLES[e]:>8s}" for e in engines)
    group = len(titles)
    width = max([30] + [len(row["method"]) for row in rows])
    print(f"{'':{width}s} {' steady, ms ':-^{group}s} {'':8s} {'':9s} {'':9s} {' first call, s ':-^{group}s}")
    header = (f"{'method':{width}s} {titles} {'grad ms':>8s} {'ours/base':>9s} {'ours/grad':>9s} {titles} "
              f"{'1st gain':>8s} {'build gain':>10s}  targets (vs base)")
    print(header)
    print("-" * len(header))
    for row in rows:
        native = row["steady"].get("native")
        base = baseline(row)
        speed = _ratio(native, row["steady"].get(base))
        first_gain = _ratio(row["first"].get(base), row["first"].get("native"))
        build_gain = _ratio(build_seconds(row, base), build_seconds(row, "native"))
        versus_gradient = _ratio(native, row["tape"])
        checks = []
        if speed is not None:
            needed = FIRST_CALL_TARGETS[base]
            checks.append(f"vs {TITLES[base]}: " + ("speed ok" if speed <= 1 else "speed SLOWER"))
            checks.append("1st ok" if first_gain >= needed else f"1st <{needed}x")
        if "alpha" in row["method"] and versus_gradient is not None:
            checks.append("<=2.5 grad" if versus_gradient <= 2.5 else ">2.5 grad")
        print(f"{row['method']:{width}s} "
              + " ".join(_cell(row["steady"].get(e) and row["steady"][e] * 1e3, ".1f", 8) for e in engines)
              + f" {row['tape'] * 1e3:8.1f} {_cell(speed, '.2f', 9)} {_cell(versus_gradient, '.2f', 9)} "
              + " ".join(_cell(row["first"].get(e), ".2f", 8) for e in engines)
              + f" {_cell(first_gain, '.1f', 8)} {_cell(build_gain, '.1f', 10)}  {', '.join(checks)}")
    print("ours = native; base = the plain iNNvestigate package (iNNv pkg), or for the DeepLIFT methods the "
          "deeplift package (deeplift engine); '-': not offered or skipped.")
    print("1st gain = base first call / ours (the target); build gain = the same ratio of first call minus "
          "one steady call (analyzer creation and trace / graph build, without the computation a first call "
          "also does).")
    print(f"plain tf.GradientTape gradient: first call {tape_first:.2f} s ('grad ms' is its median measured "
          "alongside each method)")
    started = ", ".join(f"{TITLES[e]} {s:.1f} s" for e, s in startups.items() if s is not None)
    if started:
        print(f"process start-up (not in the first calls): {started}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.innvestigate_worker:
        innvestigate_worker(*args.innvestigate_worker)
        return 0
    sys.path.insert(0, str(REPOSITORY))
    import numpy as np

    import keras_xai
    offered = {info.name: tuple(info.engines) for info in keras_xai.list_analyzers()}
    unknown = [m for m in args.methods or () if m not in offered]
    if unknown:
        print(f"unknown method(s) {unknown}; choose from {sorted(offered)}", file=sys.stderr)
        return 2
    model = build_model(args.seed)
    engines = runnable_engines([e for e in ENGINES if e in args.engines], model)
    methods = args.methods or [name for name, by in offered.items() if set(by) & set(engines)]
    x = np.random.default_rng(args.seed).uniform(0, 1, (args.batch, 32, 32, 3)).astype(np.float32)
    print(f"appendix-D CIFAR net, batch {args.batch}, median of {args.repeats} interleaved calls "
          f"({args.augmented_repeats} for {' / '.join(AUGMENTED)}); engines: {', '.join(engines)}", flush=True)
    tape_gradient = tape_gradient_function(model)
    tape_first = seconds(lambda: tape_gradient(x))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        timers = {e: EngineTimer(e, model, x) for e in engines if e != "package"}
        if "package" in engines:
            timers["package"] = PackageTimer(model, x, Path(folder))
        try:
            for method in methods:
                repeats = args.augmented_repeats if method in AUGMENTED else args.repeats
                row = time_method(method, timers, offered[method], repeats, lambda: tape_gradient(x))
                timed = ", ".join(f"{e} {s:.3f} s" for e, s in row["steady"].items())
                print(f"  {method}: {timed or 'no engine ran it'}; gradient {row['tape']:.3f} s", flush=True)
                rows.append(row)
        finally:
            if "package" in timers:
                timers["package"].close()
    startups = {e: t.startup for e, t in timers.items()}
    fits = {m: s for t in timers.values() for m, s in getattr(t, "fit_seconds", {}).items()}
    print()
    print_table(rows, engines, startups, tape_first)
    if fits:
        print("pattern fitting on the batch (not in the first calls): "
              + ", ".join(f"{m} {s:.2f} s" for m, s in fits.items()))
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "repeats": args.repeats, "engines": engines,
                                         "tape_first": tape_first, "startup": startups, "pattern_fit": fits,
                                         "methods": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
