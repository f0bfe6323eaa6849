"""The ``gates`` command, the thesis' proposed next step: each gate block W_i, W_f, W_g, W_o of both
LSTM layers (input and recurrent kernels) replaced by low-rank versions, and what the last hidden state
then looks like through a decoder h -> image; its numbers (JSON/CSV) and figures (PNG) go to the output
folder."""
from __future__ import annotations

import time

import numpy as np

from . import experiments, files, metrics, plots
from .commands_classifier import VARIANT_HEADER, variant_rows
from .commands_generative import probe_positions
from .context import Context
from .states import LSTM_LAYERS, THESIS_GATE


# --------------------------------------------------------------------------------------------- gates
def _decoded_gate_figure(ctx: Context, matrix, shown: list, images: np.ndarray, truth: list, original: list) -> None:
    """One figure and CSV: the probe digits, their decoded h, and their decoded h under each variant."""
    stem = f"{matrix.layer}_{matrix.kind}_{matrix.gate}"
    labels = ["input", "h decoded"] + [f"{s['name']} ({100 * s['accuracy']:.0f}%)" for s in shown]
    predictions = [truth, original] + [[str(p) for p in s["probe_predictions"]] for s in shown]
    files.write_images_csv(ctx.out / "gates" / f"decoded_{stem}.csv", images.reshape(-1, 28, 28),
                           names=[f"{label}|prediction={predictions[r][k]}" for r, label in enumerate(labels)
                                  for k in range(len(truth))])
    blank = [""] * len(truth)
    plots.image_grid(images, ctx.out / "gates" / f"decoded_{stem}.png",
                     f"What lstm2's final h looks like when the {matrix.layer} {matrix.kind} block of "
                     f"{THESIS_GATE[matrix.gate]} is replaced (h -> image decoder; corner: prediction, red = wrong)",
                     row_labels=labels, column_labels=[f"true {t}" for t in truth],
                     cell_labels=[blank] + predictions[1:],
                     highlight=[[False] * len(truth)]
                     + [[p != t for p, t in zip(row, truth)] for row in predictions[1:]])


def run_gates(ctx: Context) -> None:
    from . import generative

    out, states, seed = ctx.out, ctx.states, ctx.args.seed
    rows = experiments.subsample(ctx.data.y_test, ctx.args.gate_test, seed)
    x_gate, y_gate = ctx.data.x_test[rows], ctx.data.y_test[rows]
    probes = probe_positions(y_gate)
    families = list(ctx.args.gate_families)
    variants = [v for family in families
                for v in experiments.variant_family(family, 10, include_zero=family == "first-k")]
    started = time.perf_counter()
    result = experiments.gate_lowrank(ctx.model, x_gate, y_gate, variants, probe_positions=probes,
                                      progress=ctx.progress)
    seconds = time.perf_counter() - started
    decoder, decoder_meta = generative.train_state_decoder(states.hidden_train, ctx.data.x_train,
                                                           ctx.args.decoder_epochs, ctx.model_info["fingerprint"],
                                                           seed=seed, progress=ctx.progress, log=ctx.log)
    decoder_stats = generative.collapse_statistics(decoder.predict(states.hidden_test, batch_size=1000, verbose=0),
                                                   ctx.data.x_test, ctx.data.x_train.mean(axis=0))

    def decode(hidden) -> np.ndarray:
        return decoder(np.asarray(hidden, np.float32), training=False).numpy()

    original_accuracy = metrics.accuracy(result["original_confusion"])
    first_k = [v for v in variants if v.family == "first-k"]
    shown_variants = first_k or variants  # the rows of the decoded figures and the accuracy curves
    truth = [str(c) for c in y_gate[probes]]
    original = [str(c) for c in np.argmax(states.logits_test[rows][probes], axis=1)]
    original_images = decode(result["original_probe_hidden"])
    csv_rows, matrices_json, curves, recall_panels = [], [], {}, {}
    for entry in result["matrices"]:
        matrix = entry["matrix"]
        summaries = [r.summary() for r in entry["variants"]]
        by_name = {s["name"]: s for s in summaries}
        csv_rows += [[matrix.layer, matrix.kind, matrix.gate, THESIS_GATE[matrix.gate], *row]
                     for row in variant_rows(summaries)]
        keeping = [v.rank for v in first_k if by_name[v.name]["accuracy"] >= original_accuracy - 0.01]
        matrices_json.append({"layer": matrix.layer, "kind": matrix.kind, "gate": matrix.gate,
                              "thesis_name": THESIS_GATE[matrix.gate], "shape": list(entry["shape"]),
                              "singular_values": entry["singular_values"],
                              "smallest_rank_within_1_point": min(keeping) if keeping else None,
                              "variants": [{k: v for k, v in s.items() if k != "probe_hidden"} for s in summaries]})
        curves[matrix.name] = [by_name[v.name]["accuracy"] for v in shown_variants]
        recall_panels[f"{matrix.layer} {matrix.kind} {THESIS_GATE[matrix.gate]} ({matrix.gate})"] = (
            [s["recall"] for s in summaries], [s["accuracy"] for s in summaries])
        shown = [by_name[v.name] for v in shown_variants]
        decoded = decode(np.concatenate([s["probe_hidden"] for s in shown])).reshape(len(shown), len(probes), 28, 28)
        images = np.concatenate([np.stack([x_gate[probes], original_images]), decoded])
        _decoded_gate_figure(ctx, matrix, shown, images, truth, original)
    files.write_json(out / "gates.json", {"original_accuracy": original_accuracy, "n_test": len(y_gate),
                                          "families": families, "seconds": seconds, "matrices": matrices_json,
                                          "decoder": {**decoder_stats, "epochs": ctx.args.decoder_epochs,
                                                      "weights": decoder_meta.get("source")},
                                          "probe_test_positions": rows[probes], "model": ctx.model_info})
    files.write_csv(out / "gates.csv", ["layer", "kind", "gate", "thesis_name", *VARIANT_HEADER], csv_rows)
    plots.recall_panels(recall_panels, [v.name for v in variants], out / "gates_recall.png",
                        "Per-class recall when one gate block is replaced by a low-rank version (accuracy in brackets)")
    panels = {f"{layer} (input {'x: 28 x 10' if layer == 'lstm1' else 'lstm1 h: 10 x 10'} per gate)":
              [m for m in curves if m.startswith(layer + "/")] for layer in LSTM_LAYERS}
    plots.accuracy_curves(curves, [v.name for v in shown_variants], out / "gates_accuracy.png",
                          "Test accuracy when one gate block is replaced (solid: input kernel, dashed: recurrent "
                          f"kernel; {len(y_gate)} test images)", panels, "variant of one gate block")
    ctx.log(f"{len(result['matrices']) * len(variants)} gate variants in {seconds:.1f} s")
