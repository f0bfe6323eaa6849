"""Cosine similarity convergence (CSC), Sixt et al. (2020) section 5 and figures 6, 7c, 10.

Random vectors v_1..v_n ~ N(0, I) are injected at layer k and propagated down with a method's rule.
At each lower layer, the propagated vectors of every pair (v_i, v_j) are compared by the absolute
cosine similarity s_cos(a, b) = a.b / (|a| |b|): per spatial location over the channels for feature maps
of shape (h, w, c), over the whole vector for dense layers. A converging method aligns them (|cos| -> 1).
"""
from __future__ import annotations

import itertools

import numpy as np

SUMMARY_PERCENTILES = (0, 1, 5, 10, 20, 50, 80, 95, 99, 100)
HISTOGRAM_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 0.999, 0.9999, 1.0)


def _as_locations(paths: np.ndarray, n_leading: int) -> np.ndarray:
    """(..., *layer_shape) -> (..., locations, channels): rank-1 layers are one location."""
    layer_shape = paths.shape[n_leading:]
    if len(layer_shape) == 0:
        raise ValueError("paths need at least one layer axis after the image and vector axes")
    if len(layer_shape) == 1:
        return paths.reshape(*paths.shape[:n_leading], 1, layer_shape[0])
    return paths.reshape(*paths.shape[:n_leading], -1, layer_shape[-1])


#: Most float64 bytes of vectors one cosine block converts and reads: the block's passes (norms and
#: one dot product per pair) then run in cache; whole layers at once were 2x slower on large maps
#: (20 images x 5 vectors x 28x28x64: 12.7 ms whole, 5.8 ms in 8 MiB blocks; 0.5 MiB blocks: 10 ms).
COSINE_BLOCK_BYTES = 8 << 20


def pairwise_abs_cosine(paths: np.ndarray) -> np.ndarray:
    """|cos| between every pair of propagated vectors, per location.

    Parameters
    ----------
    paths : array (n_images, n_vectors, *layer_shape)
        The quantity at one layer for each image and each injected vector.

    Returns
    -------
    array (n_images, n_pairs, n_locations), n_pairs = n_vectors (n_vectors - 1) / 2, NaN where one of
    the two vectors is zero (the cosine is undefined there). Computed in float64.
    """
    paths = np.asarray(paths)
    if paths.ndim < 3:
        raise ValueError(f"paths must be (n_images, n_vectors, *layer_shape), got shape {paths.shape}")
    vectors = _as_locations(paths, 2)  # (images, vectors, locations, channels)
    n_images, n_vectors, n_locations, n_channels = vectors.shape
    out = np.empty((n_images, n_vectors * (n_vectors - 1) // 2, n_locations))
    per_location = max(1, n_vectors * n_channels * 8)
    if n_locations * per_location <= COSINE_BLOCK_BYTES:  # whole images per block
        images = max(1, COSINE_BLOCK_BYTES // (n_locations * per_location))
        for begin in range(0, n_images, images):
            out[begin:begin + images] = _block_abs_cosine(vectors[begin:begin + images])
    else:  # large maps: blocks of locations of one image
        locations = max(1, COSINE_BLOCK_BYTES // per_location)
        for image in range(n_images):
            for begin in range(0, n_locations, locations):
                out[image:image + 1, :, begin:begin + locations] = _block_abs_cosine(
                    vectors[image:image + 1, :, begin:begin + locations])
    return out


def _block_abs_cosine(vectors: np.ndarray) -> np.ndarray:
    """:func:`pairwise_abs_cosine` of (images, vectors, locations, channels)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.sqrt(np.einsum("nvlc,nvlc->nvl", vectors, vectors))  # einsum: ~3x faster than linalg.norm
    pairs = list(itertools.combinations(range(vectors.shape[1]), 2))
    dots = np.empty((vectors.shape[0], len(pairs), vectors.shape[2]))
    for index, (i, j) in enumerate(pairs):
        dots[:, index] = np.einsum("nlc,nlc->nl", vectors[:, i], vectors[:, j])
    first, second = np.array(pairs, dtype=int).reshape(-1, 2).T  # no pairs for a single vector
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.abs(dots / (norms[:, first] * norms[:, second]))
    out[~np.isfinite(out)] = np.nan
    return out


def csc_per_location(paths: np.ndarray) -> np.ndarray:
    """All finite |cos| values of :func:`pairwise_abs_cosine` as one flat array (NaN dropped)."""
    values = pairwise_abs_cosine(paths).ravel()
    return values[~np.isnan(values)]


def csc_baseline(channels: int, n_pairs: int = 10_000, rng: np.random.Generator | int | None = 0) -> float:
    """Median |cos| between two independent N(0, I) vectors of dimension ``channels``.

    What CSC would show if the method kept the injected vectors unrelated (paper figure 6, dashed).
    """
    rng = np.random.default_rng(rng)
    a = rng.standard_normal((n_pairs, channels))
    b = rng.standard_normal((n_pairs, channels))
    cosine = np.einsum("nc,nc->n", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.median(np.abs(cosine)))


def csc_summary(values: np.ndarray) -> dict:
    """Median, the paper's percentiles and the histogram (bins 0, 0.1, ..., 0.9, 0.99, 0.999, 0.9999, 1)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"n": 0, "median": float("nan"), "percentiles": {}, "histogram": {}}
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=HISTOGRAM_BINS)
    return {
        "n": int(values.size),
        "median": float(np.median(values)),
        "percentiles": {str(p): float(v) for p, v in zip(SUMMARY_PERCENTILES, np.percentile(values, SUMMARY_PERCENTILES))},
        "histogram": {"bins": list(HISTOGRAM_BINS), "counts": counts.tolist()},
    }


# ---------------------------------------------------------------------- compact per-image storage
# A run collects millions of |cos| values (every location, pair, layer, image). Per image we keep
# histograms instead: the paper's coarse bins exactly, and a fine histogram of the dissimilarity
# t = -log10(1 - |cos|) in steps of 0.02 (5% relative resolution in 1 - |cos|, the quantity the
# paper plots on a log scale), from which medians and percentiles over all images are read.
DISSIMILARITY_FLOOR = 1e-16  # float64 resolution: 1 - |cos| below this counts as converged
FINE_EDGES = np.linspace(0.0, 16.0, 801)


def dissimilarity(values: np.ndarray) -> np.ndarray:
    """t = -log10(1 - |cos|), floored at 1 - |cos| = 1e-16 (t = 16)."""
    gap = np.clip(1.0 - np.abs(np.asarray(values, dtype=np.float64)), DISSIMILARITY_FLOOR, 1.0)
    return -np.log10(gap)


def histograms(values: np.ndarray) -> tuple:
    """(fine counts over ``FINE_EDGES`` of t, counts in the paper's ``HISTOGRAM_BINS``) of finite values."""
    fine, coarse = row_histograms(np.asarray(values).reshape(1, -1))
    return fine[0], coarse[0]


def row_histograms(values: np.ndarray) -> tuple:
    """:func:`histograms` of every row of ``values`` (rows, ...) at once: (fine (rows, 800), coarse (rows, 13)).

    The counts are those of ``np.histogram`` (bins closed on the left, the last one on both sides),
    computed without its sort per row (and without ``searchsorted``, slow for unsorted values).
    """
    values = np.asarray(values, dtype=np.float64)
    rows = values.reshape(len(values), -1)
    finite = ~np.isnan(rows)
    row_of_value = np.broadcast_to(np.arange(len(rows))[:, None], rows.shape)[finite]
    kept = rows[finite]
    fine = _uniform_bin_index(dissimilarity(kept), FINE_EDGES)
    coarse = _few_bin_index(np.clip(np.abs(kept), 0.0, 1.0), np.asarray(HISTOGRAM_BINS))
    return (_per_row_counts(fine, row_of_value, len(rows), len(FINE_EDGES) - 1),
            _per_row_counts(coarse, row_of_value, len(rows), len(HISTOGRAM_BINS) - 1))


def _uniform_bin_index(values, edges) -> np.ndarray:
    """Bin of each value (all within the edges) on an evenly spaced grid: the arithmetic guess,
    corrected by one bin where rounding put it next to the bin ``np.histogram`` chooses."""
    n_bins = len(edges) - 1
    step = (edges[-1] - edges[0]) / n_bins
    guess = np.clip(np.floor((values - edges[0]) * (n_bins / (edges[-1] - edges[0]))), 0, n_bins - 1)
    if np.array_equal(edges[0] + np.arange(n_bins + 1) * step, edges):
        # np.linspace's grid: a guess's edges by the same arithmetic (bit for bit), no gathers.
        lower, upper = edges[0] + guess * step, edges[0] + (guess + 1) * step
        guess = guess.astype(np.int64)
    else:
        guess = guess.astype(np.int64)
        lower, upper = edges[guess], edges[guess + 1]
    below, above = values < lower, values >= upper
    guess -= below & (guess > 0)
    guess += above & (guess < n_bins - 1)  # never both: lower < upper
    return guess


def _few_bin_index(values, edges) -> np.ndarray:
    """Bin of each value (all within the edges) for a handful of edges: how many inner edges are <= it
    (counted in bytes: a third of the time of int64 counts)."""
    index = np.zeros(values.shape, np.uint8 if len(edges) < 256 else np.int64)
    at_or_above = np.empty(values.shape, bool)
    for edge in edges[1:-1]:
        index += np.greater_equal(values, edge, out=at_or_above)
    return index


def _per_row_counts(bins, row_of_value, n_rows, n_bins) -> np.ndarray:
    counts = np.bincount(row_of_value * n_bins + bins, minlength=n_rows * n_bins)
    return counts.reshape(n_rows, n_bins).astype(np.int64)


def quantile_from_histogram(fine_counts: np.ndarray, q: float) -> float:
    """The q-quantile (0..1) of |cos| from a fine histogram, interpolating linearly in t."""
    counts = np.asarray(fine_counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    occupied = np.nonzero(counts)[0]
    if q <= 0:
        t = FINE_EDGES[occupied[0]]  # lower edge of the first occupied bin
    elif q >= 1:
        t = FINE_EDGES[occupied[-1] + 1]  # upper edge of the last occupied bin
    else:
        cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / total
        t = np.interp(q, cumulative, FINE_EDGES)
    return float(1.0 - 10.0 ** (-t))


def summary_from_histograms(fine_counts: np.ndarray, coarse_counts: np.ndarray) -> dict:
    """:func:`csc_summary` computed from (summed) histograms instead of raw values."""
    total = int(np.sum(fine_counts))
    if total == 0:
        return {"n": 0, "median": float("nan"), "percentiles": {}, "histogram": {}}
    return {
        "n": total,
        "median": quantile_from_histogram(fine_counts, 0.5),
        "percentiles": {str(p): quantile_from_histogram(fine_counts, p / 100) for p in SUMMARY_PERCENTILES},
        "histogram": {"bins": list(HISTOGRAM_BINS), "counts": np.asarray(coarse_counts).tolist()},
    }
