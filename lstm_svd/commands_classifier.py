"""The commands on the trained classifier (``train``, ``output-layer``, ``lowrank``, ``embed``): its
accuracy and confusion matrices, the output layer W^T and its SVD, the low-rank output layers (table
4.1, rank-1 envelopes) and the t-SNE of the hidden states; each writes its numbers (JSON/CSV) and
figures (PNG) to the output folder."""
from __future__ import annotations

import time

import numpy as np

from . import experiments, files, metrics, plots, report
from .context import Context
from .states import output_layer


def _confusion_rows(confusion: np.ndarray, prefix=()) -> list:
    return [[*prefix, t, p, int(confusion[t, p])] for t in range(confusion.shape[0]) for p in range(confusion.shape[1])]


# --------------------------------------------------------------------------------------------- train
def run_train(ctx: Context) -> None:
    states, out = ctx.states, ctx.out
    result = experiments.evaluate_classifier(states)
    raw_test = ctx.data.raw_test
    trajectory = None
    if ctx.args.trajectory != "none":
        from architectures import training

        analysed = ctx.args.trajectory == "analysed"
        recipe = training.get_recipe("lstm_classifier", None if analysed else ctx.args.trajectory)
        if analysed and ctx.args.epochs:
            recipe = recipe.with_epochs(ctx.args.epochs)
        d = ctx.data
        trajectory = experiments.training_trajectory(recipe, d.x_train, d.y_train, d.x_test, d.y_test,
                                                     seed=ctx.args.seed, progress=ctx.progress)
        files.write_json(out / "trajectory.json", trajectory)
        files.write_csv(out / "trajectory_confusions.csv", ["epoch", "split", "true", "predicted", "count"],
                        [row for e in trajectory["epochs"] for split in ("train", "test")
                         for row in _confusion_rows(np.asarray(e[f"confusion_{split}"]), (e["epoch"], split))])
        plots.confusion_grid({f"epoch {e['epoch']}, {split} ({100 * e[f'accuracy_{split}']:.2f}%)":
                              e[f"confusion_{split}"] for e in trajectory["epochs"] for split in ("train", "test")},
                             out / "confusion_per_epoch.png",
                             f"Confusion matrices after each epoch ({trajectory['recipe']} recipe; thesis fig. 4.2)",
                             columns=4)
    files.write_json(out / "classifier.json", {
        **result, "model": ctx.model_info, "trajectory_recipe": None if trajectory is None else trajectory["recipe"]})
    files.write_csv(out / "confusion.csv", ["split", "true", "predicted", "count"],
                    _confusion_rows(result["confusion_test"], ("test",))
                    + _confusion_rows(result["confusion_train"], ("train",)))
    plots.confusion_matrix(result["confusion_test"], out / "confusion_test.png",
                           f"Test set, accuracy {100 * result['test_accuracy']:.2f}% (thesis fig. 3.2: 97.23%)")
    plots.confusion_matrix(result["confusion_train"], out / "confusion_train.png",
                           f"Training set, accuracy {100 * result['train_accuracy']:.2f}%")
    galleries = [{**pair, "images": raw_test[pair["test_positions"]]} for pair in result["confused_pairs"]]
    plots.misclassified_galleries(galleries, out / "misclassified.png",
                                  "Misclassified test digits of the most confused pairs (thesis fig. 4.1)")
    ctx.log(f"test accuracy {100 * result['test_accuracy']:.2f}% (thesis 97.23%)")


# -------------------------------------------------------------------------------------- output layer
def run_output_layer(ctx: Context) -> None:
    out, states = ctx.out, ctx.states
    layer = output_layer(ctx.model)
    result = experiments.output_layer_analysis(layer, states, None if ctx.args.reference_row is None
                                               else ctx.args.reference_row - 1)
    reference = result["reference_row"]
    files.write_json(out / "output_layer.json", {
        **{k: v for k, v in result.items() if k not in ("pca_train", "pca_test")}, "model": ctx.model_info})
    n = len(layer.bias)
    files.write_csv(out / "output_rows.csv", ["vector", *[f"class_{c}" for c in range(n)]],
                    [[f"row_{i + 1}", *row] for i, row in enumerate(layer.kernel)] + [["bias", *layer.bias]])
    files.write_csv(out / "gramian.csv", ["row", *[f"row_{j + 1}" for j in range(len(layer.kernel))]],
                    [[i + 1, *row] for i, row in enumerate(result["gramian"])])
    files.write_csv(out / "angles.csv", ["from", *[f"row_{j + 1}" for j in range(len(layer.kernel))]],
                    [[f"row_{i + 1}", *row] for i, row in enumerate(result["angles_rows"])]
                    + [["bias", *result["angles_bias"]]])
    files.write_csv(out / "singular_values.csv", ["direction", "singular_value", *[f"u_{z}" for z in range(n)],
                                                  *[f"v_class_{c}" for c in range(n)]],
                    [[i + 1, s, *result["u"][:, i], *result["vt"][i]] for i, s in enumerate(result["singular_values"])])
    plotted = {}
    for split, labels in (("train", states.labels_train), ("test", states.labels_test)):
        rows = experiments.subsample(labels, ctx.args.pca_points, ctx.args.seed)
        plotted[split] = (result[f"pca_{split}"][rows], labels[rows])
        files.write_csv(out / f"pca_{split}.csv", ["position", "label", "pc1", "pc2", "pc3"],
                        [[int(p), int(labels[p]), *result[f"pca_{split}"][p]] for p in rows])
    plots.output_rows(layer.kernel, layer.bias, out / "output_rows.png", "Rows of W^T and the bias (thesis fig. 4.3)")
    plots.gramian(result["gramian"], out / "gramian.png", "Gramian of the rows of W^T as cosines (thesis fig. 4.4)")
    plots.angle_diagram(result["angles_rows"][reference], np.linalg.norm(layer.kernel, axis=1), reference,
                        result["angles_bias"], float(np.linalg.norm(layer.bias)), out / "angles.png",
                        f"Angles of row {reference + 1}"
                        + (" (fewest near-orthogonal partners)" if ctx.args.reference_row is None else "")
                        + " and of the bias to the rows of W^T (thesis fig. 4.5)")
    plots.singular_values(result["singular_values"], out / "singular_values.png",
                          "Singular values of W^T (thesis fig. 4.6)")
    explained = result["pca_explained_variance_ratio"]
    plots.pca_scatter({k: v[0] for k, v in plotted.items()}, {k: v[1] for k, v in plotted.items()}, explained,
                      out / "pca_outputs.png",
                      f"Output vectors y on the first 3 principal components ({100 * explained.sum():.1f}% of the "
                      "training variance; thesis fig. 4.7: about 50%)")
    ctx.log(f"singular values {np.round(result['singular_values'], 3).tolist()}; "
            f"PCA(3) explains {100 * explained.sum():.1f}%")


# ------------------------------------------------------------------------------------------ low rank
def variant_rows(summaries: list) -> list:
    return [[s["name"], s["family"], " ".join(map(str, s["keep"])), s["rank"], s["accuracy"], *s["recall"],
             " ".join(map(str, s["predicted_classes"])), " ".join(map(str, s["predicted_classes_over_1_percent"])),
             " ".join(map(str, s["lost_classes"])), s["changed_predictions"]] for s in summaries]


VARIANT_HEADER = ["variant", "family", "kept_directions", "rank", "accuracy", *[f"recall_{c}" for c in range(10)],
                  "predicted_classes", "predicted_classes_over_1pct", "lost_classes_recall_below_0.1",
                  "changed_predictions_vs_original"]


def run_lowrank(ctx: Context) -> None:
    out, states = ctx.out, ctx.states
    layer = output_layer(ctx.model)
    rank = min(layer.kernel.shape)
    custom = ctx.args.keep or [experiments.THESIS_PROPOSED_KEEP]
    variants = experiments.output_layer_variants(rank, custom)
    started = time.perf_counter()
    results = experiments.lowrank_variants(states, layer, variants)
    seconds = time.perf_counter() - started
    summaries = [r.summary() for r in results]
    geometries = [experiments.rank_one_geometry(states, layer, i) for i in range(1, rank + 1)]
    rank_one = [g.summary() for g in geometries]
    original = metrics.confusion_matrix(states.labels_test, states.predictions_test)
    files.write_json(out / "lowrank.json", {"variants": summaries, "rank_one": rank_one,
                                            "original_accuracy": metrics.accuracy(original),
                                            "original_recall": metrics.per_class_recall(original),
                                            "singular_values": experiments.linalg.svd(layer.kernel).s,
                                            "seconds_for_all_variants": seconds, "n_test": len(states.labels_test),
                                            "lost_recall_threshold": experiments.LOST_RECALL, "model": ctx.model_info})
    files.write_csv(out / "lowrank.csv", VARIANT_HEADER, variant_rows(summaries))
    files.write_csv(out / "lowrank_confusions.csv", ["variant", "true", "predicted", "count"],
                    [row for s in summaries for row in _confusion_rows(np.asarray(s["confusion"]), (s["name"],))])
    just_one = [s for s in summaries if s["family"] == "just-one"]
    table = report.table_4_1(just_one, rank_one)
    files.write_csv(out / "table_4_1.csv", ["direction", "thesis_predicted_classes", "our_predicted_classes",
                                            "our_classes_over_1pct", "envelope_classes_on_observed_t",
                                            "envelope_agreement"], table)
    files.write_csv(out / "rank_one_envelopes.csv", ["direction", "class", "t_start", "t_end"],
                    [[g["direction"], *segment] for g in rank_one for segment in g["segments"]])
    for family in experiments.FAMILIES:
        members = [s for s in summaries if s["family"] == family]
        if members:
            panels = {f"{s['name']} ({100 * s['accuracy']:.1f}%)": np.asarray(s["confusion"]) for s in members}
            plots.confusion_grid(panels,
                                 out / f"lowrank_{family}.png",
                                 f"Low-rank W^T, {family} (bias kept; test set; thesis fig. 4.9-4.13, appendix A)")
    plots.recall_heatmap([s["name"] for s in summaries], [s["recall"] for s in summaries],
                         [s["accuracy"] for s in summaries], out / "lowrank_recall.png",
                         "Per-class recall of every low-rank W^T (bias kept)")
    plots.rank_one_envelopes(rank_one, [g.t for g in geometries], out / "rank_one_envelopes.png",
                             "Rank-1 W^T = s u v^T: each logit is a line in t = h . u; the top line (thick) is the "
                             "prediction, so only the classes on the upper envelope can ever be predicted")
    ctx.log(f"{len(variants)} low-rank variants evaluated from cached states in {seconds * 1000:.1f} ms")


# ------------------------------------------------------------------------------------------- t-SNE
def run_embed(ctx: Context) -> None:
    out, states = ctx.out, ctx.states
    result = experiments.embed_hidden_states(states, ctx.args.tsne_samples, ctx.args.seed, ctx.progress)
    for split in ("train", "test"):
        part = result[split]
        files.write_csv(out / f"tsne_hidden_{split}.csv", ["position", "label", "x", "y"],
                        [[int(p), int(l), *e] for p, l, e in zip(part["positions"], part["labels"], part["embedding"])])
    summary = {split: {"knn_accuracy_tsne": result[split]["knn_accuracy_tsne"],
                       "knn_accuracy_hidden": result[split]["knn_accuracy_hidden"],
                       "n_points": len(result[split]["labels"])} for split in ("train", "test")}
    files.write_json(out / "embed.json", {"n_per_split": result["n_per_split"], "seed": result["seed"], **summary})
    titles = {split: f"{split} ({len(result[split]['labels'])} random points)" for split in ("train", "test")}
    plots.embedding_scatter({titles[s]: result[s]["embedding"] for s in titles},
                            {titles[s]: result[s]["labels"] for s in titles},
                            out / "tsne_hidden.png", "t-SNE of the LSTM's last hidden state h (thesis fig. 4.8)")
