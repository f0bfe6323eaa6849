"""The paper's experiments on saliency maps as functions of (model, images, methods, options) returning
plain results.

- :func:`random_logit` (figure 4): SSIM between the maps of the true logit and of a random other logit.
- :func:`cascading_randomization` (figures 5, 11): SSIM between the original map and the map after
  randomizing the layers from the top down to each step; :func:`summarize_ssim` summarizes both.
- :func:`two_classes` (figure 1b-e): one image explained for two classes.

The CSC experiment (figures 6, 7c, 10) is :mod:`sanity.csc_experiment`; what the experiments run on
(images, patterns, analyzers) is :mod:`sanity.experiment_inputs`.

Every experiment stores its numbers per image as it goes (``out`` folder, :mod:`sanity.per_image`) and
resumes from there. The random draws of image i depend only on (seed, i) and images are computed in
fixed chunks of consecutive positions, so resumed runs equal uninterrupted ones byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from tensorflow import keras

from keras_xai import graph

from . import metrics, per_image, randomization
from .experiment_inputs import AnalyzerPool, ExperimentInputs, saliency_maps
from .methods import MethodSpec


# ------------------------------------------------------------------------------------ random logit
@dataclass
class RandomLogitResult:
    methods: list
    ssim: np.ndarray  # (n_images, n_methods)
    true_class: np.ndarray
    random_class: np.ndarray
    indices: np.ndarray
    examples: dict = field(default_factory=dict)  # method -> (true map, random map) of the first image


def random_logit(model: keras.Model, inputs: ExperimentInputs, specs: Sequence[MethodSpec], seed: int = 0,
                 out=None, engine: str = "native", chunk_size: int = 16, progress: bool = True,
                 overwrite: bool = False, log=print) -> RandomLogitResult:
    """SSIM between the maps explaining the true logit and a random other logit (paper figure 4).

    The random class of image i is uniform over the other classes, drawn from
    ``per_image.image_rng(seed, i)``. The SSIM is sign-flip invariant (:func:`metrics.ssim_flipped`), as
    in the cascading check: a converged (rank-1) chain gives ``lambda * c`` with the sign of ``lambda``
    set by the explained logit, and LRP starts from the logit's value, which is usually negative for a
    random class.
    """
    n_classes = int(graph.shape_of(model.outputs[0])[-1])
    pool = AnalyzerPool(model, inputs, engine)
    results = per_image.results(out, "random_logit",
                                per_image.key("random_logit", model, inputs, specs, seed, engine, chunk_size),
                                overwrite, log)

    def compute(positions):
        x, true = inputs.images[positions], inputs.labels[positions]
        other = np.array([_random_other_class(per_image.image_rng(seed, inputs.indices[p]), t, n_classes)
                          for p, t in zip(positions, true)])
        ssim = np.empty((len(positions), len(specs)))
        for column, spec in enumerate(specs):
            analyzer = pool.get(spec)
            maps_true, maps_other = saliency_maps(analyzer, x, true, spec), saliency_maps(analyzer, x, other, spec)
            for row in range(len(positions)):
                ssim[row, column] = metrics.ssim_flipped(maps_true[row], maps_other[row], *spec.ssim_percentiles)
        return [{"ssim": ssim[row], "true_class": true[row], "random_class": other[row]} for row in range(len(positions))]

    stored = per_image.run(results, inputs, compute, progress, "random logit")
    first = inputs.images[:1]
    examples = {}
    for spec in specs:
        analyzer = pool.get(spec)
        examples[spec.label] = (saliency_maps(analyzer, first, [stored[0]["true_class"]], spec)[0],
                                saliency_maps(analyzer, first, [stored[0]["random_class"]], spec)[0])
    return RandomLogitResult([s.label for s in specs], np.stack([r["ssim"] for r in stored]),
                             np.array([int(r["true_class"]) for r in stored]),
                             np.array([int(r["random_class"]) for r in stored]), inputs.indices.copy(), examples)


def _random_other_class(rng: np.random.Generator, true_class: int, n_classes: int) -> int:
    choice = int(rng.integers(n_classes - 1))
    return choice + 1 if choice >= true_class else choice


# ---------------------------------------------------------------------------------- cascading
@dataclass
class CascadingResult:
    methods: list
    steps: list
    ssim: np.ndarray  # (n_images, n_methods, n_steps)
    indices: np.ndarray
    examples: dict = field(default_factory=dict)  # method -> maps (n_steps + 1, h, w) of the first image


def cascading_randomization(model: keras.Model, inputs: ExperimentInputs, specs: Sequence[MethodSpec],
                            steps: Sequence[str], seed: int = 0, out=None, engine: str = "native",
                            chunk_size: int = 16, progress: bool = True, overwrite: bool = False,
                            log=print) -> CascadingResult:
    """SSIM (sign-flip invariant) between each method's map of the original model and of the model
    randomized from the top down to each step (paper figures 5 and 11; Adebayo et al. 2018).

    The maps explain the true class. One private working copy of the model is randomized step by
    step and the analyzers are built once on it (the user's model is never modified).
    """
    steps = list(steps)
    weights = list(randomization.cascading_weights(model, steps, seed))
    working = randomization.copy_model(model)
    original = model.get_weights()
    pool = AnalyzerPool(working, inputs, engine)
    results = per_image.results(out, "cascading",
                                per_image.key("cascading", model, inputs, specs, seed, engine, chunk_size,
                                              steps=steps),
                                overwrite, log)

    def maps_per_step(positions):
        """(n_steps + 1) x n_methods maps: index 0 is the original model."""
        x, true = inputs.images[positions], inputs.labels[positions]
        working.set_weights(original)
        maps = [[saliency_maps(pool.get(spec), x, true, spec) for spec in specs]]
        for _, new in weights:
            randomization.apply_weights(working, new)
            maps.append([saliency_maps(pool.get(spec), x, true, spec) for spec in specs])
        working.set_weights(original)
        return maps

    def compute(positions):
        maps = maps_per_step(positions)
        ssim = np.empty((len(positions), len(specs), len(steps)))
        for m, spec in enumerate(specs):
            for s in range(len(steps)):
                for row in range(len(positions)):
                    ssim[row, m, s] = metrics.ssim_flipped(maps[0][m][row], maps[s + 1][m][row], *spec.ssim_percentiles)
        return [{"ssim": ssim[row]} for row in range(len(positions))]

    stored = per_image.run(results, inputs, compute, progress, "cascading randomization")
    first_maps = maps_per_step(np.array([0]))
    examples = {spec.label: np.stack([first_maps[s][m][0] for s in range(len(steps) + 1)])
                for m, spec in enumerate(specs)}
    return CascadingResult([s.label for s in specs], steps, np.stack([r["ssim"] for r in stored]),
                           inputs.indices.copy(), examples)


def summarize_ssim(values: np.ndarray, confidence: float = 0.99, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Median and bootstrap confidence interval over images (axis 0) for every other index; NaN
    (undefined SSIM, see :func:`metrics.ssim_flipped`) are left out and counted in ``n_undefined``."""
    values = np.asarray(values)
    flat = values.reshape(len(values), -1)
    out = np.array([metrics.bootstrap_median_ci(flat[:, j], confidence, n_resamples, rng=seed + j)
                    for j in range(flat.shape[1])])
    shape = values.shape[1:]
    return {"median": out[:, 0].reshape(shape), "lower": out[:, 1].reshape(shape), "upper": out[:, 2].reshape(shape),
            "n_undefined": np.isnan(values).sum(axis=0)}


# ---------------------------------------------------------------------------------- two classes
def two_classes(model: keras.Model, inputs: ExperimentInputs, position: int, classes: tuple,
                specs: Sequence[MethodSpec], engine: str = "native") -> dict:
    """Image ``inputs.images[position]`` explained for two classes (paper figure 1b-e).

    For each method: both 2-D maps, their difference after scaling each to [0, 1] (min-max), the L1
    norm of that difference, and the L1 norm of the difference of the maps normalised by their sum
    (the ``n(.)`` of section 6). Class-insensitive methods give differences near zero. Methods that
    learn (PatternNet) use ``inputs``' training images and patterns already fitted on them.
    """
    if not 0 <= position < len(inputs.images):
        raise ValueError(f"position {position} is outside the {len(inputs.images)} images")
    single = slice(position, position + 1)
    inputs = ExperimentInputs(inputs.images[single], inputs.labels[single], inputs.indices[single],
                              inputs.input_range, inputs.fit_images, inputs.pattern_cache)
    pool = AnalyzerPool(model, inputs, engine)
    out = {}
    for spec in specs:
        analyzer = pool.get(spec)
        first, second = (saliency_maps(analyzer, inputs.images, [c], spec)[0] for c in classes)
        scaled = [_min_max(first), _min_max(second)]
        summed = [_by_sum(first), _by_sum(second)]
        out[spec.label] = {"maps": (first, second), "difference": scaled[0] - scaled[1],
                           "l1_min_max": float(np.abs(scaled[0] - scaled[1]).sum()),
                           "l1_sum_normalized": float(np.abs(summed[0] - summed[1]).sum())}
    return out


def _min_max(saliency_map):
    low, high = saliency_map.min(), saliency_map.max()
    return (saliency_map - low) / (high - low) if high > low else np.zeros_like(saliency_map)


def _by_sum(saliency_map):
    total = saliency_map.sum()
    return saliency_map / total if total != 0 else np.zeros_like(saliency_map)
