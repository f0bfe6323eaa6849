"""Figures of the thesis, drawn from the experiments' results (no computation here beyond layout).

Every heat map has a colour bar and every confusion matrix labelled classes (rows: true class,
columns: predicted class).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from architectures.figures import save_figure  # noqa: E402

CLASSES = [str(c) for c in range(10)]
CLASS_COLOURS = plt.get_cmap("tab10")


def _save(figure, path) -> Path:
    return save_figure(figure, path, dpi=120)


def _confusion_axes(axis, confusion: np.ndarray, annotate: bool, title: str, fontsize=7):
    """Colour = fraction of the true class (row), so splits and variants of any size compare; the cells
    hold the counts. A square-root colour scale keeps a handful of images in a cell visible."""
    confusion = np.asarray(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.nan_to_num(confusion / confusion.sum(axis=1, keepdims=True))
    image = axis.imshow(fractions, cmap="Blues", norm=matplotlib.colors.PowerNorm(0.5, vmin=0, vmax=1))
    ticks = np.arange(confusion.shape[0])
    axis.set_xticks(ticks, CLASSES[:len(ticks)], fontsize=fontsize)
    axis.set_yticks(ticks, CLASSES[:len(ticks)], fontsize=fontsize)
    axis.set_xlabel("predicted class", fontsize=fontsize)
    axis.set_ylabel("true class", fontsize=fontsize)
    axis.set_title(title, fontsize=fontsize + 1)
    if annotate:
        for (i, j), value in np.ndenumerate(confusion):
            if value:
                axis.text(j, i, f"{value:g}", ha="center", va="center", fontsize=fontsize - 1,
                          color="white" if fractions[i, j] > 0.3 else "black")
    return image


FRACTION_LABEL = "fraction of the true class (row)"


def confusion_matrix(confusion: np.ndarray, path, title: str) -> Path:
    """One confusion matrix with counts in the cells (thesis fig. 3.2, 4.9-4.13)."""
    figure, axis = plt.subplots(figsize=(6.2, 5.2))
    image = _confusion_axes(axis, confusion, True, title, fontsize=8)
    figure.colorbar(image, ax=axis, label=FRACTION_LABEL + "; numbers: images")
    return _save(figure, path)


def confusion_grid(confusions: dict, path, title: str, columns: int = 5, annotate: bool | None = None) -> Path:
    """Several confusion matrices side by side, one colour scale shared by all panels.

    Counts are written in the cells when there are at most 4 panels (``annotate=None``); they are in
    the CSV files either way.
    """
    annotate = len(confusions) <= 4 if annotate is None else annotate
    names = list(confusions)
    rows = int(np.ceil(len(names) / columns))
    columns = min(columns, len(names))
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns + 1, 3.2 * rows + 0.6), squeeze=False)
    image = None
    for axis, name in zip(axes.ravel(), names):
        image = _confusion_axes(axis, confusions[name], annotate, name, fontsize=6)
    for axis in axes.ravel()[len(names):]:
        axis.axis("off")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8,
                    label=FRACTION_LABEL + ("; numbers: images" if annotate else ""))
    figure.suptitle(title)
    return _save(figure, path)


def mosaic(images: np.ndarray, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """(rows, columns, h, w) images -> one (rows*(h+gap)-gap, columns*(w+gap)-gap) picture with light gaps."""
    images = np.asarray(images, dtype=np.float32)
    n_rows, n_columns, height, width = images.shape
    canvas = np.full((n_rows * (height + gap) - gap, n_columns * (width + gap) - gap), fill, np.float32)
    for r in range(n_rows):
        for c in range(n_columns):
            top, left = r * (height + gap), c * (width + gap)
            canvas[top:top + height, left:left + width] = images[r, c]
    return canvas


def image_grid(images: np.ndarray, path, title: str, row_labels: Sequence[str] | None = None,
               column_labels: Sequence[str] | None = None, scale: float = 0.8, cell_labels=None,
               highlight=None) -> Path:
    """A grid of grey images given as an array (rows, columns, 28, 28), values in [0, 1], drawn as one mosaic.

    ``cell_labels[r][c]`` is written in the corner of a cell (red where ``highlight[r][c]`` is true).
    """
    images = np.asarray(images)
    n_rows, n_columns, height, width = images.shape
    gap = 2
    figure, axis = plt.subplots(figsize=(scale * n_columns + (1.6 if row_labels is not None else 0.3),
                                         scale * n_rows + 0.8))
    axis.imshow(mosaic(images, gap), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    centres_y = np.arange(n_rows) * (height + gap) + height / 2
    centres_x = np.arange(n_columns) * (width + gap) + width / 2
    axis.set_yticks(centres_y, list(row_labels) if row_labels is not None else [], fontsize=7)
    axis.set_xticks(centres_x, list(column_labels) if column_labels is not None else [], fontsize=7)
    if cell_labels is not None:
        for r in range(n_rows):
            for c in range(n_columns):
                if cell_labels[r][c] != "":
                    red = highlight is not None and highlight[r][c]
                    axis.text(c * (width + gap) + 1, r * (height + gap) + 1, str(cell_labels[r][c]), va="top",
                              ha="left", fontsize=6, color="red" if red else "yellow")
    axis.xaxis.tick_top()
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_title(title, fontsize=9)
    return _save(figure, path)


def misclassified_galleries(galleries: list, path, title: str, columns: int = 12) -> Path:
    """Thesis fig. 4.1: for each of the most confused pairs, its misclassified test digits (uint8 images)."""
    rows, labels = [], []
    for gallery in galleries:
        images = np.asarray(gallery["images"], dtype=np.float32) / 255.0
        n_rows = max(1, int(np.ceil(len(images) / columns)))
        padded = np.ones((n_rows * columns, 28, 28), np.float32)
        padded[:len(images)] = images
        rows += list(padded.reshape(n_rows, columns, 28, 28))
        name = f"true {gallery['true']} as {gallery['predicted']} ({gallery['count']} in all)"
        labels += [name] + [""] * (n_rows - 1)
    return image_grid(np.stack(rows), path, title, row_labels=labels, scale=0.55)


# -------------------------------------------------------------------------------------- output layer
def output_rows(rows: np.ndarray, bias: np.ndarray, path, title: str) -> Path:
    """Thesis fig. 4.3: the rows of W^T and the bias over the classes; below, the same with offsets."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), gridspec_kw={"height_ratios": [1, 1.4]})
    x = np.arange(rows.shape[1])
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(rows)))
    for i, row in enumerate(rows):
        top.plot(x, row, marker="o", markersize=3, color=colours[i], label=f"row {i + 1}")
    top.plot(x, bias, "k-", linewidth=3, marker="s", label="bias b")
    top.axhline(0, color="grey", linestyle="--", linewidth=1)
    top.set_xticks(x, CLASSES[:len(x)])
    top.set_xlabel("class")
    top.set_ylabel("weight")
    top.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    top.set_title(title)
    spacing = 1.2 * max(np.abs(rows).max(), np.abs(bias).max())
    for i, row in enumerate(list(rows) + [bias]):
        offset = -i * spacing
        bottom.axhline(offset, color="grey", linestyle=":", linewidth=0.8)
        bottom.plot(x, row + offset, marker="o", markersize=3, color="k" if i == len(rows) else colours[i])
    bottom.set_yticks([-i * spacing for i in range(len(rows) + 1)],
                      [f"row {i + 1}" for i in range(len(rows))] + ["bias"], fontsize=7)
    bottom.set_xticks(x, CLASSES[:len(x)])
    bottom.set_xlabel("class")
    bottom.set_title("the same, each with an offset (dotted line = 0)", fontsize=9)
    return _save(figure, path)


def gramian(cosines: np.ndarray, path, title: str) -> Path:
    """Thesis fig. 4.4: cosines between the rows of W^T (1: same direction, -1: opposite)."""
    figure, axis = plt.subplots(figsize=(6.4, 5.4))
    image = axis.imshow(cosines, cmap="bwr", vmin=-1, vmax=1)
    labels = [str(i + 1) for i in range(len(cosines))]
    axis.set_xticks(range(len(cosines)), labels)
    axis.set_yticks(range(len(cosines)), labels)
    axis.set_xlabel("row of W^T")
    axis.set_ylabel("row of W^T")
    for (i, j), value in np.ndenumerate(cosines):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axis, label="cos(angle between rows)")
    axis.set_title(title)
    return _save(figure, path)


def angle_diagram(angles_row: np.ndarray, norms: np.ndarray, reference: int, angles_bias: np.ndarray,
                  bias_norm: float, path, title: str) -> Path:
    """Thesis fig. 4.5: every row drawn in 2-D at its true angle to a reference vector (a row, then the
    bias), length = its norm. Angles, not the 10-D positions, are exact."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 5.3), subplot_kw={"projection": "polar"})
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(norms)))
    for axis, angles, name, ref_norm in ((axes[0], angles_row, f"row {reference + 1}", norms[reference]),
                                         (axes[1], angles_bias, "bias b", bias_norm)):
        axis.annotate("", xy=(0, ref_norm), xytext=(0, 0), arrowprops=dict(color="red", width=2.5, headwidth=8))
        others = [i for i in range(len(norms)) if name != f"row {i + 1}"]
        for rank, i in enumerate(sorted(others, key=lambda j: angles[j])):
            theta = np.radians(angles[i])
            axis.annotate("", xy=(theta, norms[i]), xytext=(0, 0),
                          arrowprops=dict(color=colours[i], width=1, headwidth=5))
            # labels of neighbouring arrows alternate between two radii so they do not overlap
            radius = 1.25 * max(norms.max(), ref_norm) * (0.93 if rank % 2 else 1.07)
            axis.text(theta, radius, f"{i + 1}: {angles[i]:.0f}°", fontsize=7, ha="center", va="center",
                      color=colours[i])
        axis.set_rmax(1.4 * max(norms.max(), ref_norm))
        axis.set_thetalim(0, np.pi)
        axis.set_title(f"angles to {name} (red)", fontsize=9)
    figure.suptitle(title)
    return _save(figure, path)


def singular_values(values: np.ndarray, path, title: str) -> Path:
    """Thesis fig. 4.6."""
    figure, axis = plt.subplots(figsize=(6, 3.8))
    x = np.arange(1, len(values) + 1)
    axis.bar(x, values, color="tab:blue")
    for i, value in zip(x, values):
        axis.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
    axis.set_xticks(x)
    axis.set_xlabel("singular direction i")
    axis.set_ylabel("singular value s_i")
    axis.set_title(title)
    return _save(figure, path)


def pca_scatter(scores: dict, labels: dict, explained: np.ndarray, path, title: str) -> Path:
    """Thesis fig. 4.7: output vectors y on the first three principal components, per split."""
    figure = plt.figure(figsize=(6 * len(scores), 5.5))
    for k, name in enumerate(scores):
        axis = figure.add_subplot(1, len(scores), k + 1, projection="3d")
        for c in range(10):
            chosen = labels[name] == c
            axis.scatter(*scores[name][chosen, :3].T, s=2, color=CLASS_COLOURS(c), label=str(c), alpha=0.6)
        axis.set_xlabel(f"PC1 ({100 * explained[0]:.1f}%)")
        axis.set_ylabel(f"PC2 ({100 * explained[1]:.1f}%)")
        axis.set_zlabel(f"PC3 ({100 * explained[2]:.1f}%)")
        axis.set_title(f"{name} ({len(labels[name])} points)")
        axis.legend(markerscale=4, fontsize=7, loc="upper left")
    figure.suptitle(title)
    return _save(figure, path)


def embedding_scatter(embeddings: dict, labels: dict, path, title: str) -> Path:
    """Thesis fig. 4.8 and 5.2: 2-D t-SNE maps coloured by class."""
    figure, axes = plt.subplots(1, len(embeddings), figsize=(6 * len(embeddings), 5.5), squeeze=False)
    for axis, name in zip(axes[0], embeddings):
        for c in range(10):
            chosen = labels[name] == c
            axis.scatter(*embeddings[name][chosen].T, s=3, color=CLASS_COLOURS(c), label=str(c))
        axis.set_title(name, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(markerscale=4, fontsize=7, loc="best")
    figure.suptitle(title)
    return _save(figure, path)


# ------------------------------------------------------------------------------------------ low rank
def recall_heatmap(names: Sequence[str], recalls: np.ndarray, accuracies: np.ndarray, path, title: str,
                   ylabel: str = "variant") -> Path:
    """Per-class recall of many variants (rows) with their accuracy written at the right."""
    recalls = np.asarray(recalls, dtype=float)
    figure, axis = plt.subplots(figsize=(7.5, 0.27 * len(names) + 1.6))
    image = axis.imshow(recalls, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axis.set_yticks(range(len(names)), names, fontsize=7)
    axis.set_xticks(range(recalls.shape[1]), CLASSES[:recalls.shape[1]])
    axis.set_xlabel("class")
    axis.set_ylabel(ylabel)
    for i, value in enumerate(accuracies):
        axis.text(recalls.shape[1] - 0.4, i, f" acc {100 * value:.1f}%", va="center", fontsize=7)
    for (i, j), value in np.ndenumerate(recalls):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5,
                  color="black" if value > 0.5 else "white")
    figure.colorbar(image, ax=axis, label="recall (fraction of the class predicted correctly)", pad=0.12)
    axis.set_title(title)
    return _save(figure, path)


def recall_panels(panels: dict, row_names: Sequence[str], path, title: str, columns: int = 4) -> Path:
    """Many small recall heat maps (variant x class) sharing one colour bar; ``panels`` maps a panel
    title to ``(recall matrix, accuracies)``."""
    names = list(panels)
    rows = int(np.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 1, 0.17 * len(row_names) * rows + 1.2 * rows),
                                squeeze=False, gridspec_kw={"wspace": 0.6, "hspace": 0.45})
    image = None
    for axis, name in zip(axes.ravel(), names):
        recalls, accuracies = panels[name]
        image = axis.imshow(np.asarray(recalls, float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        axis.set_xticks(range(10), CLASSES, fontsize=6)
        axis.set_yticks(range(len(row_names)), [f"{n} ({100 * a:.0f}%)" for n, a in zip(row_names, accuracies)],
                        fontsize=5)
        axis.set_title(name, fontsize=7)
    for axis in axes.ravel()[len(names):]:
        axis.axis("off")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="recall per class")
    figure.suptitle(title)
    return _save(figure, path)


def rank_one_envelopes(summaries: list, ts: list, path, title: str, columns: int = 5) -> Path:
    """Every rank-1 output layer: the logits as lines in t = h . u_i (thin), the upper envelope on the
    observed range of t (thick: the predicted class), and the range of t (grey band)."""
    rows = int(np.ceil(len(summaries) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows + 0.8), squeeze=False)
    for axis, summary, t in zip(axes.ravel(), summaries, ts):
        slopes, intercepts = np.asarray(summary["slopes"]), np.asarray(summary["intercepts"])
        low, high = summary["t_min"], summary["t_max"]
        margin = 0.1 * (high - low + 1e-9)
        grid = np.linspace(low - margin, high + margin, 100)
        for c in range(len(slopes)):
            axis.plot(grid, slopes[c] * grid + intercepts[c], color=CLASS_COLOURS(c), linewidth=0.8)
        for label, start, end in summary["segments"]:
            segment = np.array([start, end])
            axis.plot(segment, slopes[label] * segment + intercepts[label], color=CLASS_COLOURS(label), linewidth=4,
                      label=f"class {label}")
        axis.axvspan(low, high, color="grey", alpha=0.1)
        axis.set_title(f"just-{summary['direction']}: predicts {summary['empirical_classes']}", fontsize=8)
        axis.set_xlabel(f"t = h . u_{summary['direction']}", fontsize=7)
        axis.tick_params(labelsize=6)
        axis.legend(fontsize=6, loc="best")
    for axis in axes.ravel()[len(summaries):]:
        axis.axis("off")
    axes[0, 0].set_ylabel("logit t s v_c + b_c", fontsize=7)
    figure.suptitle(title)
    return _save(figure, path)


def accuracy_curves(curves: dict, x_labels: Sequence[str], path, title: str, panels: dict, xlabel: str) -> Path:
    """Accuracy per variant for several matrices; ``panels`` maps a panel title to curve names."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False, sharey=True)
    x = np.arange(len(x_labels))
    styles = {"input": "-", "recurrent": "--"}
    gate_colours = {"i": "tab:blue", "f": "tab:orange", "c": "tab:green", "o": "tab:red"}
    thesis_names = {"i": "W_i", "f": "W_f", "c": "W_g", "o": "W_o"}
    for axis, (panel, names) in zip(axes[0], panels.items()):
        for name in names:
            layer, kind, gate = name.split("/")
            axis.plot(x, curves[name], styles[kind], marker="o", markersize=3, color=gate_colours[gate],
                      label=f"{kind} kernel, {thesis_names[gate]} ({gate})")
        axis.set_xticks(x, x_labels, rotation=45, ha="right", fontsize=7)
        axis.set_xlabel(xlabel)
        axis.set_title(panel, fontsize=9)
        axis.grid(alpha=0.4)
        axis.legend(fontsize=7)
    axes[0, 0].set_ylabel("test accuracy")
    figure.suptitle(title)
    return _save(figure, path)


def loss_curves(histories: dict, path, title: str) -> Path:
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in histories.items():
        axis.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name)
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.4)
    axis.set_title(title)
    return _save(figure, path)
