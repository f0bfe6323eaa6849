"""The commands that train generative LSTMs (``autoencoder``, ``vae``): the LSTM autoencoder (does it
collapse to the mean image?) and the LSTM VAE (reconstructions, t-SNE of its latents, samples, a
classifier trained on its samples); each writes its numbers (JSON/CSV) and figures (PNG) to the output
folder."""
from __future__ import annotations

import numpy as np

from . import experiments, files, metrics, plots
from .context import Context


# ------------------------------------------------------------------------------------- autoencoders
def probe_positions(labels: np.ndarray) -> np.ndarray:
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
    probes = probe_positions(y_test)
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
    probes = probe_positions(y_test)
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
