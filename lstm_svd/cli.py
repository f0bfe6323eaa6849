"""``python -m lstm_svd``: the LSTM MNIST thesis, reproduced and finished, as files (JSON/CSV numbers,
PNG figures, report.md)."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from architectures.cli_types import (existing_file, int_in_range, int_list, name_list, output_folder, positive_int,
                                     seed_int)
from architectures.data import DataNotFoundError
from architectures.run_lock import RunLock, RunLockedError
from architectures.training import RECIPES
from architectures.weights import WeightsFileError, load_weights_file

from . import experiments, files, metrics, plots, report
from .states import LSTM_LAYERS, THESIS_GATE, hidden_states, output_layer, weights_fingerprint

COMMANDS = ("train", "output-layer", "lowrank", "embed", "autoencoder", "vae", "gates", "all")

# Settings that differ between the full protocol and --quick (the main job's few-minute run).
FULL = dict(tsne_samples=5000, ae_epochs=5, ae_train=None, vae_epochs=20, vae_train=None, sample_epochs=10,
            decoder_epochs=20, gate_test=None, gate_families=("first-k", "all-except-one"), trajectory="thesis")
QUICK = dict(tsne_samples=1000, ae_epochs=1, ae_train=5000, vae_epochs=4, vae_train=10000, sample_epochs=3,
             decoder_epochs=5, gate_test=2000, gate_families=("first-k",), trajectory="none")

# What the options are checked against at parse time.
MNIST_TRAIN, MNIST_TEST = 60000, 10000  # images in MNIST's two splits
DIRECTIONS = 10  # rows of W^T and singular directions of the 10 x 10 output layer
MIN_POINTS = 6  # fewest points of a t-SNE map and its 5-nearest-neighbour score (a point and 5 neighbours)
CLASSIFIER_RECIPES = sorted(RECIPES["lstm_classifier"])


@dataclass
class Data:
    """The images the analyses use (all of MNIST unless --n-train / --n-test ask for random subsets)."""

    x_train: np.ndarray  # float32 (n, 28, 28) rows in [0, 1]
    y_train: np.ndarray
    train_index: np.ndarray  # positions in the full MNIST training set
    x_test: np.ndarray
    y_test: np.ndarray
    test_index: np.ndarray
    raw_train: np.ndarray  # uint8 images
    raw_test: np.ndarray


@dataclass
class Context:
    """What every command needs, loaded once: data, the classifier, its cached hidden states."""

    args: argparse.Namespace
    out: Path
    model_info: dict = field(default_factory=dict)
    _data: Data | None = None
    _model: object = None
    _states: object = None

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(message, flush=True)

    @property
    def progress(self) -> bool:
        return not self.args.quiet

    @property
    def data(self) -> Data:
        if self._data is None:
            from architectures import data, training

            mnist = data.mnist()
            train_index = experiments.subsample(mnist.train.labels, self.args.n_train, self.args.seed)
            test_index = experiments.subsample(mnist.test.labels, self.args.n_test, self.args.seed)
            raw_train, raw_test = mnist.train.images[train_index], mnist.test.images[test_index]
            self._data = Data(training.rows_sequence(raw_train), mnist.train.labels[train_index], train_index,
                              training.rows_sequence(raw_test), mnist.test.labels[test_index], test_index,
                              raw_train, raw_test)
        return self._data

    @property
    def model(self):
        if self._model is None:
            from architectures import models, zoo

            if self.args.weights:
                model = models.lstm_classifier()
                load_weights_file(model, self.args.weights)
                self.model_info = {"source": str(self.args.weights), "recipe": "given weights file"}
            else:
                trained = zoo.trained_model("lstm_classifier", "mnist", recipe=self.args.recipe, seed=self.args.seed,
                                            epochs=self.args.epochs, verbose=0 if self.args.quiet else 1)
                model = trained.model
                meta = trained.metadata
                self.model_info = {"source": meta.get("source"), "recipe": meta["recipe"]["name"],
                                   "recipe_settings": meta["recipe"], "epochs": meta["recipe"]["epochs"],
                                   "cached_test_accuracy": meta.get("test_accuracy")}
            self.model_info["fingerprint"] = weights_fingerprint(model)
            self._model = model
        return self._model

    @property
    def states(self):
        if self._states is None:
            model = self.model  # first: a --weights file that does not fit fails before the data is loaded
            d = self.data
            started = time.perf_counter()
            self._states = hidden_states(model, d.x_train, d.y_train, d.x_test, d.y_test, d.train_index,
                                         d.test_index, cache_dir=self.args.cache_dir, log=self.log)
            self.log(f"hidden states of {len(d.y_train)} training and {len(d.y_test)} test images ready "
                     f"({time.perf_counter() - started:.1f} s; computed once, then read from the cache)")
        return self._states


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
def _variant_rows(summaries: list) -> list:
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
    files.write_csv(out / "lowrank.csv", VARIANT_HEADER, _variant_rows(summaries))
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


# ------------------------------------------------------------------------------------- autoencoders
def _probe_positions(labels: np.ndarray) -> np.ndarray:
    """The first test image of each class."""
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in range(10) if np.any(labels == c)])


def _training_subset(ctx: Context, n: int | None):
    rows = experiments.subsample(ctx.data.y_train, n, ctx.args.seed)
    return ctx.data.x_train[rows], ctx.data.y_train[rows]


def run_autoencoder(ctx: Context) -> None:
    from . import generative

    out = ctx.out
    x_fit, _ = _training_subset(ctx, ctx.args.ae_train)
    x_test, y_test = ctx.data.x_test, ctx.data.y_test
    model, meta = generative.train_autoencoder(x_fit, ctx.args.ae_epochs, seed=ctx.args.seed, progress=ctx.progress,
                                               log=ctx.log)
    reconstructions = model.predict(x_test, batch_size=1000, verbose=0)
    mean_image = ctx.data.x_train.mean(axis=0)
    stats = generative.collapse_statistics(reconstructions, x_test, mean_image)
    probes = _probe_positions(y_test)
    files.write_json(out / "autoencoder.json", {**stats, "epochs": ctx.args.ae_epochs, "n_train": len(x_fit),
                                                "history": meta.get("history"), "weights": meta.get("source"),
                                                "architecture": "LSTM(64)-LSTM(16) encoder, repeat, "
                                                                "LSTM(64)-LSTM(64)-Dense(28, sigmoid) decoder"})
    grid = np.stack([x_test[probes], reconstructions[probes], np.repeat(mean_image[None], len(probes), 0)])
    files.write_images_csv(out / "autoencoder_reconstructions.csv", grid.reshape(-1, 28, 28),
                           labels=np.tile(y_test[probes], 3),
                           names=[f"{row}_{k}" for row in ("input", "reconstruction", "mean_training_image")
                                  for k in range(len(probes))])
    plots.image_grid(grid, out / "autoencoder_reconstructions.png",
                     f"LSTM autoencoder (thesis fig. 5.1): relative spread of outputs {stats['relative_spread']:.2f} "
                     "(0 = same image for every input)", row_labels=["input", "output", "mean image"])
    if meta.get("history"):
        plots.loss_curves({"autoencoder": meta["history"]["loss"]}, out / "autoencoder_loss.png", "LSTM autoencoder")


def run_vae(ctx: Context) -> None:
    from . import generative

    out, seed = ctx.out, ctx.args.seed
    x_fit, y_fit = _training_subset(ctx, ctx.args.vae_train)
    x_test, y_test = ctx.data.x_test, ctx.data.y_test
    probes = _probe_positions(y_test)
    model, meta = generative.train_vae(x_fit, ctx.args.vae_epochs, seed=seed, latent_dim=ctx.args.latent_dim,
                                       probes=x_test[probes], progress=ctx.progress, log=ctx.log)
    elbo = generative.vae_elbo_terms(model, x_test, seed)
    mean_test, _ = generative.vae_codes(model, x_test)
    mean_train, _ = generative.vae_codes(model, x_fit)
    embeddings = {}
    for split, codes, labels in (("train", mean_train, y_fit), ("test", mean_test, y_test)):
        rows = experiments.subsample(labels, ctx.args.tsne_samples, seed)
        embedding = experiments.tsne_2d(codes[rows], seed)
        embeddings[split] = {"embedding": embedding, "labels": labels[rows], "positions": rows,
                             "knn_accuracy_tsne": metrics.knn_accuracy(embedding, labels[rows]),
                             "knn_accuracy_latent": metrics.knn_accuracy(codes[rows], labels[rows])}
        files.write_csv(out / f"tsne_vae_{split}.csv", ["position", "label", "x", "y"],
                        [[int(p), int(l), *e] for p, l, e in zip(rows, labels[rows], embedding)])
    samples = generative.generate(model, 400, seed)
    classifier = generative.train_on_vae_samples(model, x_fit, y_fit, x_test, y_test, epochs=ctx.args.sample_epochs,
                                                 seed=seed, progress=ctx.progress)
    reconstructions = model.get_layer("decoder").predict(mean_test[probes], verbose=0)
    files.write_json(out / "vae.json", {
        **elbo, "epochs": ctx.args.vae_epochs, "n_train": len(x_fit), "latent_dim": ctx.args.latent_dim,
        "history": meta.get("history"), "weights": meta.get("source"),
        "tsne": {s: {k: v for k, v in e.items() if k.startswith("knn")} | {"n_points": len(e["labels"])}
                 for s, e in embeddings.items()},
        "sample_classifier": {k: v for k, v in classifier.items() if k not in ("example_samples", "example_labels")},
        "architecture": f"LSTM(64)-LSTM(64) encoder -> mean, log-variance ({ctx.args.latent_dim}); z = mu + sigma eps; "
                        "Dense(400, relu)-Dense(784, sigmoid) decoder; loss = pixel cross-entropy + KL",
    })
    files.write_images_csv(out / "vae_samples.csv", samples)
    plots.image_grid(samples.reshape(20, 20, 28, 28), out / "vae_samples.png",
                     "400 digits decoded from z ~ N(0, I) (thesis appendix fig. 14)", scale=0.45)
    per_epoch = [np.asarray(images, np.float32) / 255 for images in meta.get("probe_reconstructions") or []]
    rows = [x_test[probes]] + (per_epoch if per_epoch else [reconstructions])
    labels = ["input"] + ([f"epoch {e + 1}" for e in range(len(per_epoch))] if per_epoch else ["reconstruction"])
    if len(rows) > 12:  # keep the figure readable: first epochs, then every few, and the last
        keep = sorted(set([0, 1, 2] + list(np.linspace(1, len(rows) - 1, 10).astype(int))))
        rows, labels = [rows[k] for k in keep], [labels[k] for k in keep]
    files.write_images_csv(out / "vae_reconstructions.csv", np.concatenate(rows),
                           names=[f"{label}_{k}" for label in labels for k in range(len(probes))])
    plots.image_grid(np.stack(rows), out / "vae_reconstructions.png",
                     "VAE reconstructions (from the mean code) of the same test digits during training "
                     "(thesis fig. 5.3)",
                     row_labels=labels)
    plots.embedding_scatter({f"{s} ({len(e['labels'])} random points)": e["embedding"] for s, e in embeddings.items()},
                            {f"{s} ({len(e['labels'])} random points)": e["labels"] for s, e in embeddings.items()},
                            out / "tsne_vae.png", "t-SNE of the VAE's latent means (thesis fig. 5.2)")
    plots.confusion_matrix(classifier["confusion"], out / "vae_sample_classifier_confusion.png",
                           f"Classifier trained on VAE samples, real test set: {100 * classifier['accuracy']:.2f}% "
                           "(thesis 92.90%)")
    if meta.get("history"):
        plots.loss_curves({"VAE (negative ELBO, nats)": meta["history"]["loss"]}, out / "vae_loss.png", "LSTM VAE")


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
    probes = _probe_positions(y_gate)
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
                     for row in _variant_rows(summaries)]
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


RUNNERS = {"train": run_train, "output-layer": run_output_layer, "lowrank": run_lowrank, "embed": run_embed,
           "autoencoder": run_autoencoder, "vae": run_vae, "gates": run_gates}


DESCRIPTION = """\
Reproduce the LSTM MNIST thesis (SVD of the output layer of a 2-layer LSTM classifier) and do its
proposed next step.

commands (one or more, run in this order; 'all' runs every one):
  train         test accuracy (thesis 97.23%), confusion matrices (train after each epoch, test),
                misclassified digits of the most confused pairs
  output-layer  rows of W^T and b, Gramian (cosines), angles, singular values, PCA of y
  lowrank       W^T rebuilt from first-k, last-k, all-except-one, just-one and --keep directions
                (bias kept); table 4.1; rank-1 envelopes
  embed         t-SNE of the hidden states h (subsampled: --tsne-samples per split)
  autoencoder   LSTM autoencoder (does it collapse to the mean image?)
  vae           LSTM VAE: reconstructions, t-SNE of latents, 20x20 samples, classifier trained on
                decoder samples (thesis 92.90%)
  gates         low-rank gate blocks W_i, W_f, W_g (Keras c), W_o of both LSTM layers (input and
                recurrent kernels), and a decoder h -> image to see what they do

The classifier comes from the project's weight cache (trained on first use). Its hidden states are
computed once and cached; every low-rank output layer is then one matrix product. Results go to
--out: JSON/CSV (every number behind every figure), PNG figures and report.md (each thesis finding
next to ours). --quick runs everything in a few minutes (small t-SNE subsample, few autoencoder/VAE
epochs, a test subset for the gates, no per-epoch retraining); report.md says so.
"""


def _mode_help(text: str, name: str, unit: str = "") -> str:
    """Help text ending in the full and the quick default of a mode-dependent option."""
    def shown(value):
        if value is None:
            return "all"
        return ",".join(value) if isinstance(value, tuple) else f"{value}{unit}"

    return f"{text} (full: {shown(FULL[name])}, quick: {shown(QUICK[name])})"


def _images(split: str, total: int, smallest: int = 1) -> Callable[[str], int]:
    """Type: a number of MNIST images of ``split``, ``smallest`` up to all ``total`` of them."""
    reason = f"MNIST has {total} {split} images" + (
        f"; a t-SNE map and its 5-NN score need {smallest}" if smallest > 1 else "")
    return int_in_range(smallest, total, reason)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lstm_svd", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commands", nargs="+", choices=COMMANDS, metavar="command",
                   help="one or more of: " + ", ".join(COMMANDS))
    p.add_argument("--out", type=output_folder, default="results/lstm_svd",
                   help="output folder (default results/lstm_svd); one run at a time")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the classifier's training, subsamples, t-SNE and the generative models (default 0)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="classifier training epochs (default: the recipe's)")
    p.add_argument("--recipe", default=None, choices=CLASSIFIER_RECIPES,
                   help="classifier recipe in architectures.training (default: the analyses' recipe; 'thesis' = 2 "
                        "epochs as in the thesis)")
    p.add_argument("--weights", type=existing_file, default=None,
                   help="a weights or model file (.h5, .weights.h5, .keras) of architectures.models.lstm_classifier "
                        "to analyse instead of the cached model")
    p.add_argument("--reference-row", type=int_in_range(1, DIRECTIONS), default=None, metavar="ROW",
                   help=f"output-layer: the row of W^T (1..{DIRECTIONS}) whose angles to the others are drawn "
                        "(default: the row with the fewest near-orthogonal partners, like the thesis' 7th)")
    p.add_argument("--keep", type=int_list(1, DIRECTIONS, "1,2,3,4,6"), action="append", default=None,
                   metavar="1,2,3,4,6",
                   help="lowrank: an extra subset of distinct singular directions (1 = largest); repeatable. "
                        "Default: the thesis' proposal 2,3,4,6,7,8,9,10 (all but the 1st and 5th)")
    p.add_argument("--quick", action="store_true", help="few-minute settings (the 'quick' defaults below)")
    p.add_argument("--n-train", type=_images("training", MNIST_TRAIN, MIN_POINTS), default=None,
                   help=f"use a random subset of the training images ({MIN_POINTS}..{MNIST_TRAIN})")
    p.add_argument("--n-test", type=_images("test", MNIST_TEST, MIN_POINTS), default=None,
                   help=f"use a random subset of the test images ({MIN_POINTS}..{MNIST_TEST})")
    p.add_argument("--tsne-samples", type=_images("training", MNIST_TRAIN, MIN_POINTS),
                   help=_mode_help("points per split in t-SNE", "tsne_samples"))
    p.add_argument("--pca-points", type=_images("training", MNIST_TRAIN), default=10000,
                   help="points per split drawn in the PCA figure")
    p.add_argument("--ae-epochs", type=positive_int, help=_mode_help("autoencoder epochs", "ae_epochs"))
    p.add_argument("--ae-train", type=_images("training", MNIST_TRAIN),
                   help=_mode_help("autoencoder training images", "ae_train"))
    p.add_argument("--vae-epochs", type=positive_int, help=_mode_help("VAE epochs", "vae_epochs"))
    p.add_argument("--vae-train", type=_images("training", MNIST_TRAIN, MIN_POINTS),
                   help=_mode_help("VAE training images", "vae_train"))
    p.add_argument("--latent-dim", type=int_in_range(2, reason="the t-SNE of the latent means needs 2"), default=16,
                   help="VAE latent dimension (default 16)")
    p.add_argument("--sample-epochs", type=positive_int,
                   help=_mode_help("epochs of the classifier trained on VAE samples", "sample_epochs"))
    p.add_argument("--decoder-epochs", type=positive_int,
                   help=_mode_help("epochs of the h -> image decoder", "decoder_epochs"))
    p.add_argument("--gate-test", type=_images("test", MNIST_TEST),
                   help=_mode_help("test images for the gate variants", "gate_test"))
    p.add_argument("--gate-families", type=name_list(experiments.FAMILIES[:-1]),
                   help=_mode_help("comma-separated variant families for the gate blocks: first-k, last-k, "
                                   "all-except-one, just-one", "gate_families"))
    p.add_argument("--trajectory", choices=("none", "analysed", *CLASSIFIER_RECIPES),
                   help=_mode_help("train: retrain with this recipe to record the confusion matrices after every "
                                   "epoch ('thesis' = 2 epochs; 'analysed' = the analysed model's recipe; 'none')",
                                   "trajectory"))
    p.add_argument("--cache-dir", type=output_folder, default=None,
                   help="hidden-state cache (default $KERAS_XAI_HOME/lstm_svd/states)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return p


def parse(argv=None) -> argparse.Namespace:
    """The options, each checked (see the types in ``parser``), with the mode's defaults filled in."""
    args = parser().parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


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


def main(argv=None) -> int:
    args = parse(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' retracing notes are about our many small predict calls
    ctx = Context(args, args.out)
    try:
        with RunLock(ctx.out, log=ctx.log):  # one run per folder: two would overwrite each other's files
            path = run_commands(ctx)
    # User errors found only once the run is under way: one line naming the file, no traceback.
    except (RunLockedError, WeightsFileError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ctx.log(f"wrote results, figures and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
