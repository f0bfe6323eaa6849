"""CSC against training (issue 19): the appendix-D net's cosine similarity convergence at its first conv
layer, vectors injected at the top layer, for the net untrained (Keras' initializers) and after 1, 3, 10, ...
epochs of its training recipe (the cached models of :mod:`architectures.zoo`, trained on first use).

The paper measured CSC on its net trained 100 epochs on CIFAR-10; our quick reproduction on a net trained
one epoch on MNIST. Running the same protocol along the training length separates "the method does not
converge" from "training moved it": each training length is one CSC run of :mod:`sanity.csc_experiment`
(stored per image, resumable), summarised here per method.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from architectures import data, training

from . import csc, csc_experiment
from .setups import build_setup

DEFAULT_EPOCHS = (0, 1, 3, 10)
# The methods whose 1 - |cos| distribution the figure shows (the four).
DISTRIBUTION_METHODS = ("LRP-a1b0", "DTD", "PatternNet", "Gradient")


@dataclass
class TrainingSweep:
    epochs: list
    methods: list
    injection: str
    layer: str
    summaries: dict  # method -> [csc summary at `layer` per training length]
    fine: np.ndarray  # (n_epochs, n_methods, n_fine_bins): histograms of -log10(1 - |cos|)
    test_accuracy: list  # per training length, on the whole test set
    provenance: list  # per training length: the setup's weights and images
    n_images: int

    def medians(self, method: str) -> list:
        return [summary["median"] for summary in self.summaries[method]]


def csc_over_training(specs, epochs: Sequence[int] = DEFAULT_EPOCHS, dataset: str = "mnist", n_images: int = 50,
                      seed: int = 0, n_fit: int = 2000, data_dir=None, out=None, engine: str = "native",
                      chunk_size: int = 16, progress: bool = True, overwrite: bool = False, log=print) -> TrainingSweep:
    """CSC at the first conv layer (vectors injected at the top layer) for each training length."""
    specs = [spec for spec in specs if spec.in_csc]
    needs_fit = any(spec.needs_fit for spec in specs)
    summaries = {spec.label: [] for spec in specs}
    fine, accuracies, provenance = [], [], []
    test = data.mnist().test if dataset == "mnist" else data.cifar10(data_dir).test
    test_images = training.images_to_float(test.images)  # once: every training length is measured on them
    for count in epochs:
        log(f"-- {count} epoch(s) of training")
        setup = build_setup("cifar_net", dataset, n_images, seed, data_dir=data_dir, n_fit=n_fit if needs_fit else 0,
                            epochs=count)
        injection, layer = setup.injection_layers[0], setup.first_conv_layer
        folder = None if out is None else Path(out) / f"epochs_{count}"
        result = csc_experiment.cosine_similarity_convergence(setup.model, setup.inputs, specs, [injection],
                                                              n_vectors=5, seed=seed, out=folder, engine=engine,
                                                              most_per_chunk=chunk_size, progress=progress,
                                                              overwrite=overwrite, log=log)
        at_layer = result.layers.index(layer)
        fine.append(result.fine[:, 0, at_layer])
        for spec in specs:
            summaries[spec.label].append(result.summary(spec.label, injection)[layer])
        accuracies.append(training.accuracy(setup.model, test_images, test.labels))
        provenance.append({"epochs": int(count), "model": setup.description, **setup.provenance})
    return TrainingSweep(list(map(int, epochs)), [spec.label for spec in specs], injection, layer, summaries,
                         np.stack(fine), accuracies, provenance, result.n_images)


def rows(sweep: TrainingSweep) -> list:
    """CSV rows: epochs, method, median |cos|, 1 - median, and 1 - |cos| at the 1st, 5th, 95th, 99th
    percentile of |cos| (the smallest gaps are the 99th percentile's)."""
    out = []
    for method in sweep.methods:
        for count, summary, accuracy in zip(sweep.epochs, sweep.summaries[method], sweep.test_accuracy):
            gap = {p: 1 - summary["percentiles"][str(p)] for p in (1, 5, 95, 99)}
            out.append([count, method, summary["median"], 1 - summary["median"], gap[1], gap[5], gap[95], gap[99],
                        accuracy])
    return out


CSV_HEADER = ["epochs", "method", "median_abs_cos", "one_minus_median", "one_minus_p1", "one_minus_p5",
              "one_minus_p95", "one_minus_p99", "test_accuracy"]


def dissimilarity_density(fine_counts: np.ndarray, merge: int = 4) -> tuple:
    """(bin centres of t = -log10(1 - |cos|), fraction of values per bin) of a fine histogram, ``merge``
    neighbouring bins summed (steps of 0.08 in t: readable curves)."""
    counts = np.asarray(fine_counts, dtype=np.float64).reshape(-1, merge).sum(axis=1)
    edges = csc.FINE_EDGES[::merge]
    return 0.5 * (edges[1:] + edges[:-1]), counts / max(counts.sum(), 1.0)
