"""The native engine on two stacks, in one run: today's (TF 2.21, Keras 3) against the reproduction's
(TF 2.14.1, Keras 2), per method, steady state and first call.

Runs ``scripts/bench_engine.py --engines native`` under each interpreter in turn (A, B, A, B, ... so
that the machine's load affects both alike) and reports, per method, the median over rounds of each
stack's time and their ratio. The plain ``tf.GradientTape`` gradient that bench_engine times beside
every method is the yardstick: when today's stack is slower for a method by about the tape's own
ratio, TensorFlow's kernels (not keras_xai) account for it. On this 2-core machine one stack's tape
time moved between 0.13 and 0.25 s across the methods of a single run (the machine's state drifts
over minutes), so 2 rounds gave ratios of 0.8-1.9x for identical work; 3-5 rounds settle them.

    python scripts/bench_stacks.py                       # .venv vs .venv-today, every native method
    python scripts/bench_stacks.py --methods gradient lrp.z --rounds 3 --json stacks.json

Target: today's stack within 1.1x of the reproduction stack per method.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
BENCH = REPOSITORY / "scripts" / "bench_engine.py"
TARGET = 1.1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time keras_xai's native engine under two Python environments (by default the "
                    "reproduction stack .venv and today's stack .venv-today) in one run, method by method.",
        epilog=f"Target: today's stack within {TARGET}x of the reproduction stack for every method.")
    parser.add_argument("--reproduction", type=Path, default=REPOSITORY / ".venv" / "bin" / "python",
                        help="interpreter of the reproduction stack (default: %(default)s)")
    parser.add_argument("--today", type=Path, default=REPOSITORY / ".venv-today" / "bin" / "python",
                        help="interpreter of today's stack (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="methods to time (default: every native method)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per stack, alternating (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per method and run (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.rounds, args.batch, args.repeats) < 1:
        parser.error("--rounds, --batch and --repeats must be >= 1")
    for name in ("reproduction", "today"):
        if not getattr(args, name).exists():
            parser.error(f"--{name}: no interpreter at {getattr(args, name)} (make venv / make venv-today)")
    return args


def run_bench(python: Path, args, out: Path) -> dict:
    """One bench_engine run; ``{method: (steady s, first s, tape s)}`` plus the stack's versions."""
    command = [str(python), str(BENCH), "--engines", "native", "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--augmented-repeats", "1", "--json", str(out)]
    if args.methods:
        command += ["--methods", *args.methods]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{python} {BENCH.name} failed:\n{completed.stderr[-3000:]}")
    results = json.loads(out.read_text())
    version = subprocess.run([str(python), "-c", "import tensorflow as tf, keras, sys; "
                              "print(f'TF {tf.__version__}, Keras {keras.__version__}, Python {sys.version.split()[0]}')"],
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    times = {row["method"]: (row["steady"].get("native"), row["first"].get("native"), row["tape"])
             for row in results["methods"] if row["steady"].get("native") is not None}
    return {"version": version, "times": times}


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = {"reproduction": [], "today": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for stack in runs:
                print(f"round {round_index + 1}/{args.rounds}: {stack} stack ...", flush=True)
                runs[stack].append(run_bench(getattr(args, stack), args, Path(folder) / f"{stack}{round_index}.json"))
    methods = [m for m in runs["reproduction"][0]["times"] if m in runs["today"][0]["times"]]
    rows = []
    for method in methods:
        row = {"method": method}
        for stack, stack_runs in runs.items():
            for position, part in enumerate(("steady", "first", "tape")):
                row[f"{stack}_{part}"] = _median(run["times"][method][position] for run in stack_runs)
        for part in ("steady", "first", "tape"):
            row[f"ratio_{part}"] = _ratio(row[f"today_{part}"], row[f"reproduction_{part}"])
        rows.append(row)
    versions = {stack: stack_runs[0]["version"] for stack, stack_runs in runs.items()}
    print(f"\nreproduction: {versions['reproduction']}; today: {versions['today']}; batch {args.batch}, "
          f"median of {args.rounds} runs x {args.repeats} calls")
    print(f"{'method':34s} {'repro s':>9s} {'today s':>9s} {'ratio':>6s} {'tape ratio':>10s} "
          f"{'first repro':>11s} {'first today':>11s}")
    for row in rows:
        flag = "" if row["ratio_steady"] is None or row["ratio_steady"] <= TARGET else "  > target"
        print(f"{row['method']:34s} {row['reproduction_steady']:9.3f} {row['today_steady']:9.3f} "
              f"{row['ratio_steady']:6.2f} {row['ratio_tape'] or float('nan'):10.2f} "
              f"{row['reproduction_first'] or float('nan'):11.2f} {row['today_first'] or float('nan'):11.2f}{flag}")
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "batch": args.batch, "rounds": args.rounds,
                                         "repeats": args.repeats, "methods": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
