"""The commands of ``python -m lstm_svd``: the runner of each command (:data:`RUNNERS`; one module per
part of the thesis: :mod:`lstm_svd.commands_classifier`, :mod:`lstm_svd.commands_generative`,
:mod:`lstm_svd.commands_gates`) and :func:`run_commands`, which runs the asked ones in order, records
their wall times and settings and then writes report.md."""
from __future__ import annotations

import time
from pathlib import Path

from . import files, report
from .commands_classifier import run_embed, run_lowrank, run_output_layer, run_train
from .commands_gates import run_gates
from .commands_generative import run_autoencoder, run_vae
from .context import Context

COMMANDS = ("train", "output-layer", "lowrank", "embed", "autoencoder", "vae", "gates", "all")


RUNNERS = {"train": run_train, "output-layer": run_output_layer, "lowrank": run_lowrank, "embed": run_embed,
           "autoencoder": run_autoencoder, "vae": run_vae, "gates": run_gates}


def run_commands(ctx: Context) -> Path:
    """Run the asked commands in order, recording each one's wall time and settings; then write report.md."""
    args, out = ctx.args, ctx.out
    commands = COMMANDS[:-1] if "all" in args.commands else tuple(dict.fromkeys(args.commands))
    timings = files.read_json(out / "timings.json") or {}
    settings = files.read_json(out / "settings.json") or {}
    for command in commands:
        ctx.log(f"== {command}")
        started = time.perf_counter()
        RUNNERS[command](ctx)
        timings[command] = round(time.perf_counter() - started, 1)
        settings[command] = {**vars(args), "command": command, "mode": "quick" if args.quick else "full",
                             "model": ctx.model_info or None}
        files.write_json(out / "timings.json", timings)
        files.write_json(out / "settings.json", settings)
    return report.write_report(out)
