"""The paper's experiments as functions of (model, images, methods, options) returning plain results.

- :func:`random_logit` (figure 4): SSIM between the maps of the true logit and of a random other logit.
- :func:`cascading_randomization` (figures 5, 11): SSIM between the original map and the map after
  randomizing the layers from the top down to each step.
- :func:`cosine_similarity_convergence` (figures 6, 7c, 10): CSC per layer after injecting random
  vectors at a layer.
- :func:`two_classes` (figure 1b-e): one image explained for two classes.

Every experiment stores its numbers per image as it goes (``out`` folder, :mod:`sanity.store`) and
resumes from there. The random draws of image i depend only on (seed, i) and images are computed in
fixed chunks of consecutive positions, so resumed runs equal uninterrupted ones byte for byte.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tensorflow import keras
from tqdm.auto import tqdm

import keras_xai
from keras_xai import graph

from . import csc, metrics, randomization
from .methods import MethodSpec
from . import run_key
from .store import ImageResults, MemoryResults


@dataclass
class ExperimentInputs:
    """Model-ready images and what the experiments need to know about them."""

    images: np.ndarray  # float32 (n, h, w, c), already preprocessed for the model
    labels: np.ndarray  # int (n,) true classes
    indices: np.ndarray  # int (n,) position in the source data set (provenance, per-image seeds)
    input_range: tuple  # (low, high) of valid inputs: DTD's box and SmoothGrad's noise scale
    fit_images: np.ndarray | None = None  # training images for methods that learn (PatternNet)
    # Fitted patterns per model-weights digest: PatternNet and PatternAttribution share one fit.
    pattern_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # Weights digest -> digest of the patterns the user gave for those weights (use_patterns).
    given_patterns: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.images = np.asarray(self.images, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        if not (len(self.images) == len(self.labels) == len(self.indices)):
            raise ValueError(f"images ({len(self.images)}), labels ({len(self.labels)}) and indices "
                             f"({len(self.indices)}) must have the same length")
        if len(np.unique(self.indices)) != len(self.indices):
            raise ValueError("indices must be unique: they name the per-image result files")


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one image: independent of which other images are in the run."""
    return np.random.default_rng([int(seed), int(index)])


def fitted_patterns(model: keras.Model, inputs: ExperimentInputs, progress: bool = False) -> dict:
    """PatternNet's patterns (two-component estimator) fitted on ``inputs.fit_images`` for the model's
    current weights; fitted once per weights and reused by every experiment that gets the same inputs."""
    if inputs.fit_images is None:
        raise ValueError("PatternNet / PatternAttribution learn patterns from data: pass fit_images in ExperimentInputs")
    key = run_key.weights_digest(model)
    if key not in inputs.pattern_cache:
        analyzer = keras_xai.create_analyzer("pattern.net", model)
        inputs.pattern_cache[key] = dict(analyzer.fit(inputs.fit_images, verbose=progress).patterns)
    return inputs.pattern_cache[key]


def use_patterns(model: keras.Model, inputs: ExperimentInputs, patterns) -> None:
    """Use given patterns ({layer: array} or a ``.npz`` saved by ``PatternAnalyzer.save_patterns``)
    for the model's current weights instead of fitting them."""
    if not isinstance(patterns, dict):
        analyzer = keras_xai.create_analyzer("pattern.net", model, patterns=patterns)  # loads and checks shapes
        patterns = dict(analyzer.patterns)
    weights = run_key.weights_digest(model)
    inputs.pattern_cache[weights] = patterns
    inputs.given_patterns[weights] = run_key.digest(*(patterns[name] for name in sorted(patterns)))


class AnalyzerPool:
    """One analyzer per method for one model, created on first use (traces are reused)."""

    def __init__(self, model: keras.Model, inputs: ExperimentInputs, engine: str = "native"):
        self.model, self.inputs, self.engine = model, inputs, engine
        self._analyzers = {}

    def get(self, spec: MethodSpec):
        if spec.label not in self._analyzers:
            parameters = spec.parameters(self.inputs.input_range)
            if spec.needs_fit:
                parameters["patterns"] = fitted_patterns(self.model, self.inputs)
            self._analyzers[spec.label] = keras_xai.create_analyzer(spec.analyzer, self.model, engine=self.engine,
                                                                    **parameters)
        return self._analyzers[spec.label]


def saliency_maps(analyzer, x: np.ndarray, classes: np.ndarray, spec: MethodSpec) -> np.ndarray:
    """2-D maps (n, h, w): the analysis of ``classes`` reduced over channels as the paper does."""
    return metrics.reduce_channels(analyzer.analyze(x, neuron_selection=np.asarray(classes)), spec.reduction)


def _results(out, name: str, key: dict, overwrite: bool, log):
    if out is None:
        return MemoryResults(key["batch_size"])
    return ImageResults(Path(out) / name, key, overwrite=overwrite, log=log)


def _key(name, model, inputs, specs, seed, engine, batch_size, **extra) -> dict:
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


def _run(results, inputs, compute: Callable, progress: bool, description: str) -> list:
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

    The random class of image i is uniform over the other classes, drawn from ``image_rng(seed, i)``.
    The SSIM is sign-flip invariant (:func:`metrics.ssim_flipped`), as in the cascading check: a
    converged (rank-1) chain gives ``lambda * c`` with the sign of ``lambda`` set by the explained logit,
    and LRP starts from the logit's value, which is usually negative for a random class.
    """
    n_classes = int(graph.shape_of(model.outputs[0])[-1])
    pool = AnalyzerPool(model, inputs, engine)
    results = _results(out, "random_logit", _key("random_logit", model, inputs, specs, seed, engine, chunk_size),
                       overwrite, log)

    def compute(positions):
        x, true = inputs.images[positions], inputs.labels[positions]
        other = np.array([_random_other_class(image_rng(seed, inputs.indices[p]), t, n_classes)
                          for p, t in zip(positions, true)])
        ssim = np.empty((len(positions), len(specs)))
        for column, spec in enumerate(specs):
            analyzer = pool.get(spec)
            maps_true, maps_other = saliency_maps(analyzer, x, true, spec), saliency_maps(analyzer, x, other, spec)
            for row in range(len(positions)):
                ssim[row, column] = metrics.ssim_flipped(maps_true[row], maps_other[row], *spec.ssim_percentiles)
        return [{"ssim": ssim[row], "true_class": true[row], "random_class": other[row]} for row in range(len(positions))]

    stored = _run(results, inputs, compute, progress, "random logit")
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
    results = _results(out, "cascading", _key("cascading", model, inputs, specs, seed, engine, chunk_size, steps=steps),
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

    stored = _run(results, inputs, compute, progress, "cascading randomization")
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


# -------------------------------------------------------------------------------------------- CSC
@dataclass
class CSCResult:
    methods: list
    injection_layers: list
    layers: list  # every layer name of the model, the histogram index
    fine: np.ndarray  # (n_methods, n_injections, n_layers, n_fine_bins) summed over images
    coarse: np.ndarray  # (n_methods, n_injections, n_layers, n_coarse_bins)
    channels: dict  # layer -> channel count (the size of one compared vector)
    n_images: int

    def summary(self, method: str, injection: str) -> dict:
        """{layer: csc summary} for the layers the injected vectors reached."""
        m, k = self.methods.index(method), self.injection_layers.index(injection)
        return {layer: csc.summary_from_histograms(self.fine[m, k, l], self.coarse[m, k, l])
                for l, layer in enumerate(self.layers) if self.fine[m, k, l].sum() > 0}

    def baselines(self, seed: int = 0) -> dict:
        return {layer: csc.csc_baseline(c, rng=seed) for layer, c in self.channels.items()}


def _layer_vector_size(shape: tuple) -> int:
    return int(shape[-1])  # per location over channels; a dense layer's whole vector


def cosine_similarity_convergence(model: keras.Model, inputs: ExperimentInputs, specs: Sequence[MethodSpec],
                                  injection_layers: Sequence[str], n_vectors: int = 5, seed: int = 0, out=None,
                                  engine: str = "native", chunk_size: int | None = None, most_per_chunk: int = 16,
                                  progress: bool = True, overwrite: bool = False, log=print) -> CSCResult:
    """CSC (paper section 5): inject ``n_vectors`` N(0, I) vectors at each injection layer's output,
    propagate them down with every method, and collect |cos| between the propagated vectors of every
    pair at every lower layer (per location for feature maps). The same random vectors serve every
    method; they are drawn from ``image_rng(seed, i)`` in the order of ``injection_layers``.
    ``chunk_size``: images per call (and per stored chunk); None: :func:`csc_chunk_size`, at most
    ``most_per_chunk``.
    """
    injection_layers = list(injection_layers)
    repeated = sorted({name for name in injection_layers if injection_layers.count(name) > 1})
    if repeated:
        raise ValueError(f"injection layers must be unique, {repeated} appear more than once")
    layers = _layer_names(model)
    if chunk_size is None:
        chunk_size = csc_chunk_size(model, injection_layers, n_vectors, most_per_chunk)
    shapes = {name: sample_shape(model, name) for name in injection_layers}
    pool = AnalyzerPool(model, inputs, engine)
    results = _results(out, "csc", _key("csc", model, inputs, specs, seed, engine, chunk_size,
                                        injection_layers=injection_layers, n_vectors=n_vectors), overwrite, log)
    chunk_size = results.batch_size  # a resumed run keeps the batch size it started with
    n_fine, n_coarse = len(csc.FINE_EDGES) - 1, len(csc.HISTOGRAM_BINS) - 1
    channels = {}  # layer -> vector size, as the propagated results show it

    # Chosen once for the chunk size, so that a smaller last chunk needs no new trace.
    groups = _injection_groups(model, layers, injection_layers, chunk_size * n_vectors)

    def compute(positions):
        x = inputs.images[positions]
        fine = np.zeros((len(positions), len(specs), len(injection_layers), len(layers), n_fine), np.int64)
        coarse = np.zeros((len(positions), len(specs), len(injection_layers), len(layers), n_coarse), np.int64)
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
                for layer_name, size, histograms in injection_histograms(propagated.pop(name), len(positions),
                                                                         n_vectors):
                    channels[layer_name] = size
                    l = layers.index(layer_name)
                    fine[:, m, k, l], coarse[:, m, k, l] = histograms

        # While one call propagates (TF), the statistics of the previous call's results (NumPy) run in
        # one thread and the next call is traced (Python) in another: TF and NumPy release the GIL,
        # so the cores stay busy. At most two calls' results are alive. The statistics of the last
        # call, which nothing else overlaps, are split by injection over all statistics threads.
        workers = ThreadPoolExecutor(max_workers=STATISTICS_THREADS)
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
        return [{"fine": fine[row], "coarse": coarse[row], "channels": sizes} for row in range(len(positions))]

    stored = _run(results, inputs, compute, progress, "cosine similarity convergence")
    sizes = {name: int(size) for name, size in zip(layers, stored[0]["channels"]) if size > 0}
    return CSCResult([s.label for s in specs], injection_layers, layers,
                     np.sum([r["fine"] for r in stored], axis=0), np.sum([r["coarse"] for r in stored], axis=0),
                     sizes, len(stored))


def injection_histograms(propagated: dict, n_images: int, n_vectors: int):
    """Per layer of one injection's results (layer -> ``n_vectors`` rows per image, image-major):
    ``(layer, vector size, (fine, coarse))``, the per-image CSC histograms of :func:`csc.row_histograms`.
    Arrays that are one tensor (LRP's relevance at a conv layer and its ReLU, Dropout) are counted once."""
    done = {}  # buffer -> (histograms, array): the array is kept so that its memory serves no other meanwhile
    for layer_name, values in propagated.items():
        values = np.asarray(values)
        buffer = _buffer(values)
        if buffer not in done:
            per_image = values.reshape(n_images, n_vectors, *values.shape[1:])
            done[buffer] = (csc.row_histograms(csc.pairwise_abs_cosine(per_image)), values)
        yield layer_name, _layer_vector_size(values.shape[1:]), done[buffer][0]


def _buffer(array: np.ndarray) -> tuple:
    """What makes two arrays the same values while both are alive: memory, shape, strides, dtype."""
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


def injected_vectors(inputs: ExperimentInputs, positions, injection_layers, shapes: dict, n_vectors: int,
                      seed: int) -> dict:
    """Layer -> the N(0, I) vectors injected there, (images * vectors, *shape), image-major: drawn
    from ``image_rng(seed, index)`` of each image, in the order of ``injection_layers`` (images in
    two threads: NumPy's generators release the GIL; 0.12 -> 0.07 s for 20 MNIST images). Each
    image's draws go straight into its rows (float64 -> float32 as ``astype``): no per-image arrays
    to concatenate afterwards."""
    injected = {name: np.empty((len(positions) * n_vectors, *shapes[name]), np.float32) for name in injection_layers}

    def draw(row, position):
        rng = image_rng(seed, inputs.indices[position])
        for name in injection_layers:
            injected[name][row * n_vectors:(row + 1) * n_vectors] = rng.standard_normal((n_vectors, *shapes[name]))

    with ThreadPoolExecutor(max_workers=2) as threads:
        list(threads.map(draw, range(len(positions)), positions))
    return injected


#: Threads computing CSC statistics: one while a call propagates (a second one slowed the propagation
#: as much as it gained), all of them on the last call's results.
STATISTICS_THREADS = 2
#: Most bytes the propagated vectors of one call may take (float32): injections are grouped under it.
INJECTION_GROUP_BYTES = 1 << 30


def csc_chunk_size(model: keras.Model, injection_layers: Sequence[str], n_vectors: int = 5, most: int = 16) -> int:
    """Images per CSC call: as many as keep the results of every injection (``n_vectors`` per image at
    every layer below it, float32) within :data:`INJECTION_GROUP_BYTES`, from 1 to ``most``; ``most``
    // 4 when layer sizes are only known at run time. The appendix-D net takes 16 (50 MNIST images, the
    14 CSC methods but PatternNet's: 28-33 s, 32-33 s with 4 per call), VGG-16 one image per call."""
    layers = _layer_names(model)
    sizes = [_known_size(model, name) for name in layers]
    per_row = [_bytes_per_row(sizes, layers, name) for name in injection_layers]
    if None in per_row:
        return max(1, most // 4)
    return max(1, min(most, INJECTION_GROUP_BYTES // max(1, n_vectors * sum(per_row))))


def _bytes_per_row(sizes: list, layers: list, injection: str):
    """float32 bytes of one injected vector's results (every layer at or below ``injection``); None
    if a size is only known at run time."""
    below = sizes[:layers.index(injection) + 1] if injection in layers else sizes
    return None if None in below else 4 * sum(below)


def _layer_names(model: keras.Model) -> list:
    """Every layer's name, input names first (a Sequential model's InputLayer is not in model.layers)."""
    return list(dict.fromkeys([*graph.input_names(model), *(layer.name for layer in model.layers)]))


def _injection_groups(model: keras.Model, layers: list, injection_layers: list, rows: int) -> list:
    """Injection layers in consecutive groups whose results (``rows`` vectors at every layer below
    each injection) fit :data:`INJECTION_GROUP_BYTES`: all of them for small nets, one at a time for
    VGG-16-sized feature maps."""
    sizes = [_known_size(model, name) for name in layers]
    groups, used = [], 0
    for name in injection_layers:
        per_row = _bytes_per_row(sizes, layers, name)
        # A layer whose size is only known at run time: its injection goes alone.
        needed = rows * per_row if per_row is not None else INJECTION_GROUP_BYTES + 1
        if groups and used + needed <= INJECTION_GROUP_BYTES:
            groups[-1].append(name)
            used += needed
        else:
            groups.append([name])
            used = needed
    return groups


def _known_size(model: keras.Model, name: str):
    """Values per sample at a layer's output, None if not known before running (or a shared layer)."""
    try:
        shape = sample_shape(model, name)
    except ValueError:  # a layer applied several times has no single output shape
        return None
    return None if None in shape else int(np.prod(shape))


def sample_shape(model: keras.Model, name: str) -> tuple:
    """Output shape of one sample at layer (or input) ``name``: no batch dimension."""
    return graph.output_shape(model, name)[1:]


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
