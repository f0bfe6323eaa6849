"""The CSC experiment (paper section 5, figures 6, 7c, 10): random vectors injected at layers, propagated
down with every method, and the per-image histograms of |cos| between them at every lower layer
(:mod:`sanity.csc`), stored per image (:mod:`sanity.per_image`). How the work is divided into calls and
threads is :mod:`sanity.csc_schedule`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from tensorflow import keras

from . import csc, csc_schedule, per_image
from .experiment_inputs import AnalyzerPool, ExperimentInputs
from .methods import MethodSpec


@dataclass
class CSCResult:
    methods: list
    injection_layers: list
    layers: list  # every layer name of the model, the histogram index
    fine: np.ndarray  # (n_methods, n_injections, n_layers, n_fine_bins) summed over images
    coarse: np.ndarray  # (n_methods, n_injections, n_layers, n_coarse_bins)
    channels: dict  # layer -> channel count (the size of one compared vector)
    n_images: int
    # layer -> |cos| (n_images, n_methods, n_injections, n_pairs, n_locations) for per_location_layers
    per_location: dict = field(default_factory=dict)

    def summary(self, method: str, injection: str) -> dict:
        """{layer: csc summary} for the layers the injected vectors reached."""
        m, k = self.methods.index(method), self.injection_layers.index(injection)
        return {layer: csc.summary_from_histograms(self.fine[m, k, l], self.coarse[m, k, l])
                for l, layer in enumerate(self.layers) if self.fine[m, k, l].sum() > 0}

    def location_medians(self, method: str, injection: str, layer: str) -> np.ndarray:
        """Median |cos| over images and pairs at each location (an LSTM layer's time steps) of ``layer``;
        NaN where the injection does not reach it."""
        m, k = self.methods.index(method), self.injection_layers.index(injection)
        values = self.per_location[layer][:, m, k]  # (images, pairs, locations)
        values = np.moveaxis(values, -1, 0).reshape(values.shape[-1], -1)
        reached = ~np.isnan(values).all(axis=1)
        medians = np.full(len(values), np.nan)
        medians[reached] = np.nanmedian(values[reached], axis=1)
        return medians

    def baselines(self, seed: int = 0) -> dict:
        return {layer: csc.csc_baseline(c, rng=seed) for layer, c in self.channels.items()}


def _layer_vector_size(shape: tuple) -> int:
    return int(shape[-1])  # per location over channels; a dense layer's whole vector


def cosine_similarity_convergence(model: keras.Model, inputs: ExperimentInputs, specs: Sequence[MethodSpec],
                                  injection_layers: Sequence[str], n_vectors: int = 5, seed: int = 0, out=None,
                                  engine: str = "native", chunk_size: int | None = None, most_per_chunk: int = 16,
                                  progress: bool = True, overwrite: bool = False, log=print,
                                  per_location_layers: Sequence[str] = ()) -> CSCResult:
    """CSC (paper section 5): inject ``n_vectors`` N(0, I) vectors at each injection layer's output,
    propagate them down with every method, and collect |cos| between the propagated vectors of every
    pair at every lower layer (per location for feature maps). The same random vectors serve every
    method; they are drawn from ``per_image.image_rng(seed, i)`` in the order of ``injection_layers``.
    ``chunk_size``: images per call (and per stored chunk); None: :func:`csc_schedule.csc_chunk_size`,
    at most ``most_per_chunk``. ``per_location_layers`` (an LSTM's sequence outputs): their |cos| values
    are also kept per location (time step), :meth:`CSCResult.location_medians`.
    """
    injection_layers = list(injection_layers)
    repeated = sorted({name for name in injection_layers if injection_layers.count(name) > 1})
    if repeated:
        raise ValueError(f"injection layers must be unique, {repeated} appear more than once")
    layers = csc_schedule.layer_names(model)
    per_location_layers = list(per_location_layers)
    unknown = [name for name in per_location_layers if name not in layers]
    if unknown:
        raise ValueError(f"per_location_layers {unknown} are not layers of model '{model.name}'")
    if chunk_size is None:
        chunk_size = csc_schedule.csc_chunk_size(model, injection_layers, n_vectors, most_per_chunk)
    shapes = {name: csc_schedule.sample_shape(model, name) for name in injection_layers}
    shapes_of_layers = {name: csc_schedule.sample_shape(model, name) for name in per_location_layers}
    pool = AnalyzerPool(model, inputs, engine)
    extra = {"per_location_layers": per_location_layers} if per_location_layers else {}
    results = per_image.results(out, "csc", per_image.key("csc", model, inputs, specs, seed, engine, chunk_size,
                                                          injection_layers=injection_layers, n_vectors=n_vectors,
                                                          **extra),
                                overwrite, log)
    chunk_size = results.batch_size  # a resumed run keeps the batch size it started with
    n_fine, n_coarse = len(csc.FINE_EDGES) - 1, len(csc.HISTOGRAM_BINS) - 1
    channels = {}  # layer -> vector size, as the propagated results show it

    # Chosen once for the chunk size, so that a smaller last chunk needs no new trace.
    groups = csc_schedule.injection_groups(model, layers, injection_layers, chunk_size * n_vectors)

    def compute(positions):
        x = inputs.images[positions]
        fine = np.zeros((len(positions), len(specs), len(injection_layers), len(layers), n_fine), np.int64)
        coarse = np.zeros((len(positions), len(specs), len(injection_layers), len(layers), n_coarse), np.int64)
        n_pairs = n_vectors * (n_vectors - 1) // 2
        located = {name: np.full((len(positions), len(specs), len(injection_layers), n_pairs,
                                  _locations(shapes_of_layers[name])), np.nan) for name in per_location_layers}
        # One call (one forward pass, one trace) per method and group of injections.
        calls = [(m, spec, group) for m, spec in enumerate(specs) for group in groups]

        def prepare(index):  # tracing needs the shapes of the vectors only
            _, spec, group = calls[index]
            shaped = {name: np.broadcast_to(np.float32(0), (len(positions) * n_vectors, *shapes[name]))
                      for name in group}
            return tracer.submit(pool.get(spec).prepare_propagate_from_layers, x, shaped)

        def statistics(m, names, propagated):
            for name in names:
                k = injection_layers.index(name)
                # Popped: each injection's results are freed once counted, so that the pass running
                # meanwhile can reuse their memory instead of the process growing (page faults).
                for layer_name, size, cosines, histograms in injection_histograms(
                        propagated.pop(name), len(positions), n_vectors, keep_cosines=per_location_layers):
                    channels[layer_name] = size
                    l = layers.index(layer_name)
                    fine[:, m, k, l], coarse[:, m, k, l] = histograms
                    if layer_name in located:
                        located[layer_name][:, m, k] = cosines

        # While one call propagates (TF), the statistics of the previous call's results (NumPy) run in
        # one thread and the next call is traced (Python) in another: TF and NumPy release the GIL,
        # so the cores stay busy. At most two calls' results are alive. The statistics of the last
        # call, which nothing else overlaps, are split by injection over all statistics threads.
        workers = ThreadPoolExecutor(max_workers=csc_schedule.STATISTICS_THREADS)
        tracer = ThreadPoolExecutor(max_workers=1)
        try:
            traced = prepare(0)  # while the vectors are drawn
            injected = injected_vectors(inputs, positions, injection_layers, shapes, n_vectors, seed)
            pending = []
            for index, (m, spec, group) in enumerate(calls):
                traced.result()  # a method that cannot propagate fails here, before its call
                if index + 1 < len(calls):
                    traced = prepare(index + 1)
                propagated = pool.get(spec).propagate_from_layers(x, {name: injected[name] for name in group},
                                                                  copy=False)  # the statistics only read
                for future in pending:
                    future.result()
                jobs = [[name] for name in group] if index + 1 == len(calls) else [list(group)]
                pending = [workers.submit(statistics, m, names, propagated) for names in jobs]
                del propagated
            for future in pending:
                future.result()
        finally:  # on an error or an interrupt, drop the queued work instead of waiting for it
            tracer.shutdown(wait=True, cancel_futures=True)
            workers.shutdown(wait=True, cancel_futures=True)
        sizes = np.array([channels.get(name, 0) for name in layers], np.int64)  # stored: a resumed run reads them
        return [{"fine": fine[row], "coarse": coarse[row], "channels": sizes,
                 **{f"per_location_{name}": values[row] for name, values in located.items()}}
                for row in range(len(positions))]

    stored = per_image.run(results, inputs, compute, progress, "cosine similarity convergence")
    sizes = {name: int(size) for name, size in zip(layers, stored[0]["channels"]) if size > 0}
    return CSCResult([s.label for s in specs], injection_layers, layers,
                     np.sum([r["fine"] for r in stored], axis=0), np.sum([r["coarse"] for r in stored], axis=0),
                     sizes, len(stored),
                     {name: np.stack([r[f"per_location_{name}"] for r in stored]) for name in per_location_layers})


def _locations(shape: tuple) -> int:
    """Compared vectors per sample at a layer of this shape (:func:`csc.pairwise_abs_cosine`)."""
    return 1 if len(shape) == 1 else int(np.prod(shape[:-1]))


def injection_histograms(propagated: dict, n_images: int, n_vectors: int, keep_cosines=()):
    """Per layer of one injection's results (layer -> ``n_vectors`` rows per image, image-major):
    ``(layer, vector size, |cos| (images, pairs, locations) for the layers in keep_cosines else None,
    (fine, coarse))``, the per-image CSC histograms of :func:`csc.row_histograms`.
    Layers with equal values (LRP's relevance at a conv layer and at its ReLU, a Dropout layer and its
    input) are counted once: comparing is far cheaper than the pairwise cosines."""
    done = []  # (values, (cosines or None, histograms)) of the layers counted so far
    for layer_name, values in propagated.items():
        values = np.asarray(values)
        counted = next((c for seen, c in done if seen.shape == values.shape and np.array_equal(seen, values)), None)
        if counted is None:
            per_image = values.reshape(n_images, n_vectors, *values.shape[1:])
            cosines = csc.pairwise_abs_cosine(per_image)
            counted = (cosines if keep_cosines else None, csc.row_histograms(cosines))  # held only if asked for
            done.append((values, counted))
        cosines, histograms = counted
        yield layer_name, _layer_vector_size(values.shape[1:]), cosines if layer_name in keep_cosines else None, \
            histograms


def injected_vectors(inputs: ExperimentInputs, positions, injection_layers, shapes: dict, n_vectors: int,
                     seed: int) -> dict:
    """Layer -> the N(0, I) vectors injected there, (images * vectors, *shape), image-major: drawn
    from ``per_image.image_rng(seed, index)`` of each image, in the order of ``injection_layers``. Each
    image's draws go straight into its rows (float64 -> float32 as ``astype``)."""
    injected = {name: np.empty((len(positions) * n_vectors, *shapes[name]), np.float32) for name in injection_layers}
    for row, position in enumerate(positions):
        rng = per_image.image_rng(seed, inputs.indices[position])
        for name in injection_layers:
            injected[name][row * n_vectors:(row + 1) * n_vectors] = rng.standard_normal((n_vectors, *shapes[name]))
    return injected
