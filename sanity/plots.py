"""Figures of the paper, drawn from the experiments' results (no computation here beyond layout).

Colours: red = positive relevance, blue = negative (as in the paper); methods the paper finds
converging are drawn in warm colours, the others in cool colours.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from architectures.figures import save_figure  # noqa: E402

from . import metrics  # noqa: E402

SALIENCY_CMAP = "bwr"


def _save(figure, path) -> Path:
    return save_figure(figure, path, dpi=130)


def _finish_log_plot(figure, axis, path, title: str, xlabel: str, ylabel: str) -> Path:
    """Labels, grid and a legend beside the axes of a curve plot; then save."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.4, which="both")
    axis.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(figure, path)


def _method_colours(methods, converges: dict):
    warm, cool = plt.get_cmap("autumn"), plt.get_cmap("winter")
    n_warm = max(1, sum(bool(converges.get(m)) for m in methods))
    n_cool = max(1, len(methods) - n_warm)
    colours, w, c = {}, 0, 0
    for method in methods:
        if converges.get(method):
            colours[method], w = warm(0.85 * w / n_warm), w + 1
        else:
            colours[method], c = cool(c / n_cool), c + 1
    return colours


def random_logit_boxplot(methods, ssim: np.ndarray, converges: dict, path, title: str) -> Path:
    """Figure 4: distribution over images of SSIM(true-logit map, random-logit map) per method."""
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(methods) + 1.5))
    columns = [ssim[~np.isnan(ssim[:, j]), j] for j in range(len(methods))]  # undefined SSIM left out
    boxes = axis.boxplot(columns, orientation="horizontal", tick_labels=methods,
                         patch_artist=True, showfliers=True, flierprops={"markersize": 2})
    colours = _method_colours(methods, converges)
    for patch, method in zip(boxes["boxes"], methods):
        patch.set_facecolor(colours[method])
    axis.invert_yaxis()
    axis.set_xlim(min(0.0, float(np.nanmin(ssim)) - 0.05), 1.02)
    axis.set_xlabel("SSIM between the maps of the true and a random logit (1 = identical)")
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.4)
    return _save(figure, path)


def cascading_curves(methods, steps, summary: dict, converges: dict, path, title: str) -> Path:
    """Figure 5: median SSIM to the original map while layers are randomized top-down, 99% CI bands."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = _method_colours(methods, converges)
    x = np.arange(len(steps))
    for j, method in enumerate(methods):
        style = "-" if converges.get(method) else "--"
        axis.plot(x, summary["median"][j], style, marker="o", markersize=3, color=colours[method], label=method)
        axis.fill_between(x, summary["lower"][j], summary["upper"][j], color=colours[method], alpha=0.15)
    axis.set_xticks(x, steps, rotation=45, ha="right")
    axis.set_xlabel("randomized from the top layer down to")
    axis.set_ylabel("SSIM to the original map (median, 99% CI)")
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(title)
    axis.grid(alpha=0.4)
    axis.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(figure, path)


def saliency_grid(rows: dict, column_titles, path, title: str, image: np.ndarray | None = None) -> Path:
    """Figures 1a/11: one row per method, one column per model state; red positive, blue negative."""
    n_rows, n_columns = len(rows), len(column_titles) + (image is not None)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(1.3 * n_columns + 1, 1.3 * n_rows + 0.6), squeeze=False)
    for r, (method, maps) in enumerate(rows.items()):
        offset = 0
        if image is not None:
            axes[r, 0].imshow(image, cmap="gray" if image.ndim == 2 else None)
            offset = 1
        for c, saliency_map in enumerate(maps):
            axes[r, c + offset].imshow(metrics.normalize_for_display(saliency_map), cmap=SALIENCY_CMAP, vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
    for c, name in enumerate((["input"] if image is not None else []) + list(column_titles)):
        axes[0, c].set_title(name, fontsize=7, rotation=30 if len(name) > 8 else 0)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    return _save(figure, path)


def csc_curves(layers, medians: dict, baseline: dict, converges: dict, path, title: str) -> Path:
    """Figure 6a-d: 1 - median |cos| per layer (log scale); the dashed line is the random baseline."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = _method_colours(list(medians), converges)
    x = np.arange(len(layers))
    floor = 1e-16
    for method, per_layer in medians.items():
        values = [max(1 - per_layer.get(layer, np.nan), floor) for layer in layers]
        axis.semilogy(x, values, "-" if converges.get(method) else "--", marker="o", markersize=3,
                      color=colours[method], label=method)
    axis.semilogy(x, [max(1 - baseline[layer], floor) for layer in layers], ":", color="black",
                  label="random vectors (baseline)")
    axis.set_xticks(x, layers, rotation=45, ha="right")
    return _finish_log_plot(figure, axis, path, title, "layer (output of), from the injection layer down to the input",
                            "1 - median |cosine similarity|")


def csc_time_steps(per_layer: dict, baselines: dict, converges: dict, path, title: str) -> Path:
    """CSC per time step: {layer: {method: median |cos| per step}}, one panel per layer, 1 - median (log)."""
    figure, axes = plt.subplots(1, len(per_layer), figsize=(5 * len(per_layer) + 2, 4), squeeze=False)
    floor = 1e-16
    for axis, (layer, medians) in zip(axes[0], per_layer.items()):
        colours = _method_colours(list(medians), converges)
        for (method, values), marker in zip(medians.items(), itertools.cycle("os^vDP*X")):  # markers tell apart
            steps = np.arange(1, len(values) + 1)
            axis.semilogy(steps, np.maximum(1 - np.asarray(values, dtype=float), floor),
                          "-" if converges.get(method) else "--", marker=marker, markersize=3, color=colours[method],
                          label=method)
        axis.axhline(max(1 - baselines[layer], floor), linestyle=":", color="black", label="random vectors (baseline)")
        axis.set_xlabel(f"time step of {layer} (row of the image)")
        axis.set_ylabel("1 - median |cosine similarity|")
        axis.set_title(layer)
        axis.grid(alpha=0.4, which="both")
    axes[0, -1].legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    figure.suptitle(title)
    return _save(figure, path)


def csc_histograms(bins, counts: dict, path, title: str) -> Path:
    """Figure 6e-g: distribution of |cos| at one layer, in the paper's bins."""
    labels = [f"{bins[i]:g}-{bins[i + 1]:g}" for i in range(len(bins) - 1)]
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(counts))
    for j, (method, values) in enumerate(counts.items()):
        values = np.asarray(values, dtype=float)
        axis.bar(np.arange(len(labels)) + j * width, values / max(values.sum(), 1), width, label=method)
    axis.set_xticks(np.arange(len(labels)) + 0.4, labels, rotation=45, ha="right", fontsize=7)
    axis.set_xlabel("|cosine similarity| bin")
    axis.set_ylabel("fraction of locations x pairs")
    axis.set_title(title)
    axis.legend(fontsize=7)
    return _save(figure, path)


def simulation_curves(summaries: dict, labels: dict, path, title: str) -> Path:
    """Figure 8: 1 - mean |cos| between the chain's vectors after each multiplication (log scale)."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    floor = 1e-17
    for name, summary in summaries.items():
        median = np.asarray(summary["median"])
        x = np.arange(len(median))
        line, = axis.semilogy(x, np.maximum(1 - median, floor), marker="o", markersize=3, label=labels.get(name, name))
        axis.fill_between(x, np.maximum(1 - np.asarray(summary["upper"]), floor),
                          np.maximum(1 - np.asarray(summary["lower"]), floor), color=line.get_color(), alpha=0.15)
    return _finish_log_plot(figure, axis, path, title, "multiplications (VGG-16 shaped backward chain)",
                            "1 - mean |cosine| between vectors")


def two_classes_figure(image: np.ndarray, results: dict, classes, class_names, path, title: str) -> Path:
    """Figure 1b-e: the image, its maps for two classes and their difference (both scaled to [0, 1])."""
    height = 1.75 * len(results) + 0.6
    figure, axes = plt.subplots(len(results), 4, figsize=(7, height), squeeze=False)
    # A fixed margin for the title (the default 12% of a tall figure leaves a wide empty band).
    figure.subplots_adjust(top=1 - 0.9 / height, bottom=0.1 / height, hspace=0.3)
    for r, (method, result) in enumerate(results.items()):
        axes[r, 0].imshow(image, cmap="gray" if image.ndim == 2 else None)
        for c, saliency_map in enumerate(result["maps"]):
            axes[r, c + 1].imshow(metrics.normalize_for_display(saliency_map), cmap=SALIENCY_CMAP, vmin=-1, vmax=1)
            axes[r, c + 1].set_title(f"{class_names[c]}", fontsize=7)
        axes[r, 3].imshow(result["difference"], cmap=SALIENCY_CMAP, vmin=-1, vmax=1)
        axes[r, 3].set_title(f"difference, L1 = {result['l1_min_max']:.3g}", fontsize=7)
        axes[r, 0].set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    return _save(figure, path)


def pattern_svd_figure(result: dict, path, title: str) -> Path:
    """Figure 3: sigma1/sigma2 per layer of A, W and A (.) W, (a) whole kernels, (b) kernels sliced
    to 1x1, (c) the inter-layer chain members of the sliced matrices (log scale)."""
    panels = (("full", result["layers"], "(a) whole kernels"),
              ("sliced", result["layers"], "(b) kernels sliced to 1x1"),
              ("interlayer", result["pairs"], "(c) inter-layer members T_l"))
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    styles = {"A": ("tab:green", "s"), "W": ("tab:blue", "o"), "A*W": ("tab:red", "^")}
    for axis, (key, names, subtitle) in zip(axes, panels):
        x = np.arange(len(names))
        for kind, values in result[key].items():
            colour, marker = styles.get(kind, (None, "o"))
            finite = np.asarray([v if np.isfinite(v) else np.nan for v in values], dtype=float)
            axis.semilogy(x, finite, marker=marker, color=colour, label={"A*W": "A (.) W"}.get(kind, kind))
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        axis.set_title(subtitle, fontsize=9)
        axis.grid(alpha=0.4, which="both")
    axes[0].set_ylabel("sigma1 / sigma2 (first / second singular value)")
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def csc_training_figure(epochs, medians: dict, converges: dict, distributions: dict, layer: str, path,
                        title: str) -> Path:
    """CSC against training: (a) 1 - median |cos| at ``layer`` per training length and method (log scale);
    (b) for each method of ``distributions`` ({method: [(t centres, fractions) per training length]}), the
    distribution of t = -log10(1 - |cos|), one curve per training length."""
    n_panels = 1 + len(distributions)
    figure, axes = plt.subplots(1, n_panels, figsize=(5.5 + 3.6 * len(distributions), 4.2), squeeze=False)
    axis = axes[0, 0]
    colours = _method_colours(list(medians), converges)
    x = np.arange(len(epochs))
    for (method, values), marker in zip(medians.items(), itertools.cycle("os^vDP*X")):
        axis.semilogy(x, np.maximum(1 - np.asarray(values, dtype=float), 1e-16), "-" if converges.get(method) else "--",
                      marker=marker, markersize=4, color=colours[method], label=method)
    axis.set_xticks(x, [f"{e} (init)" if e == 0 else str(e) for e in epochs])
    axis.set_xlabel("epochs of training")
    axis.set_ylabel(f"1 - median |cos| at {layer}")
    axis.set_title("(a) median over images, pairs, locations")
    axis.grid(alpha=0.4, which="both")
    axis.legend(fontsize=6, ncol=2)
    shades = plt.get_cmap("viridis")
    for axis, (method, per_epoch) in zip(axes[0, 1:], distributions.items()):
        for j, (count, (centres, fractions)) in enumerate(zip(epochs, per_epoch)):
            axis.plot(centres, fractions, color=shades(j / max(1, len(epochs) - 1)), label=f"{count} epochs")
        axis.set_xlabel("-log10(1 - |cos|)  (right: more converged)")
        if axis is axes[0, 1]:
            axis.set_ylabel("fraction of values")
        axis.set_title(f"(b) {method}")
        axis.grid(alpha=0.4)
        axis.legend(fontsize=7)
    figure.suptitle(title)
    return _save(figure, path)
