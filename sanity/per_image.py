"""Per-image runs that resume: an experiment's numbers are stored image by image as they are computed
(:mod:`sanity.store`, under the run key of :mod:`sanity.run_key`) and read back on a rerun.

The random draws of image i depend only on (seed, i) (:func:`image_rng`) and images are computed in
fixed chunks of consecutive positions (:func:`run`), so resumed runs equal uninterrupted ones byte for byte.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from . import run_key
from .experiment_inputs import ExperimentInputs
from .store import ImageResults, MemoryResults


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one image: independent of which other images are in the run."""
    return np.random.default_rng([int(seed), int(index)])


def results(out, name: str, key: dict, overwrite: bool, log):
    """Where experiment ``name`` keeps its per-image numbers: in memory when ``out`` is None, else the
    files of ``out / name`` (:class:`sanity.store.ImageResults`, refused if stored under another key)."""
    if out is None:
        return MemoryResults(key["batch_size"])
    return ImageResults(Path(out) / name, key, overwrite=overwrite, log=log)


def key(name, model, inputs, specs, seed, engine, batch_size, **extra) -> dict:
    """The run key (:mod:`sanity.run_key`): everything the stored numbers depend on."""
    key = {"experiment": name, "results_version": run_key.RESULTS_VERSION,
           "model": {"name": model.name, "architecture": run_key.architecture_digest(model),
                     "weights": run_key.weights_digest(model), "n_parameters": int(model.count_params())},
           "images": [[int(index), record] for index, record in zip(inputs.indices, _records(inputs))],
           "methods": [(s.label, s.analyzer, s.parameters(inputs.input_range), s.reduction, list(s.ssim_percentiles))
                       for s in specs],
           "engine": engine, "engine_version": run_key.engine_version(engine), "seed": int(seed), "input_range": list(map(float, inputs.input_range)),
           "batch_size": int(batch_size), "numerics": run_key.numerics(model), **extra}
    if any(spec.needs_fit for spec in specs):
        key["patterns"] = {"given": inputs.given_patterns.get(key["model"]["weights"]),
                           "fit_images": None if inputs.fit_images is None else run_key.digest(inputs.fit_images)}
    return key


def _records(inputs: ExperimentInputs) -> list:
    return [run_key.image_record(image, label) for image, label in zip(inputs.images, inputs.labels)]


def run(results, inputs, compute: Callable, progress: bool, description: str) -> list:
    """Every image's arrays: loaded where stored, else computed and stored at once.

    Images are computed in fixed chunks of ``results.batch_size`` consecutive positions: an image is
    always computed with the same companions, whether the run is fresh or resumed (a chunk with any
    image missing is computed whole; TF's kernels give last-bit differences between batch sizes)."""
    try:  # the folder's lock is released whatever happens (refused files, errors, Ctrl-C)
        indices = [int(i) for i in inputs.indices]
        records = _records(inputs)
        arrays = [results.load(index, record) for index, record in zip(indices, records)]
        size = results.batch_size
        chunks = [range(start, min(start + size, len(indices))) for start in range(0, len(indices), size)]
        pending = [chunk for chunk in chunks if any(arrays[p] is None for p in chunk)]
        with tqdm(total=len(indices), initial=len(indices) - sum(len(c) for c in pending), desc=description,
                  unit="image", disable=not progress) as bar:
            for chunk in pending:
                for position, computed in zip(chunk, compute(np.asarray(chunk))):
                    if arrays[position] is None:
                        results.save(indices[position], records[position], computed)
                        arrays[position] = {name: np.asarray(value) for name, value in computed.items()}
                bar.update(len(chunk))
    finally:
        results.close()
    return arrays
