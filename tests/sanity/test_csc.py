import itertools

import numpy as np
import pytest

from sanity import csc


def naive_abs_cosine(paths):
    n_images, n_vectors = paths.shape[:2]
    out = []
    for image in range(n_images):
        per_pair = []
        for i, j in itertools.combinations(range(n_vectors), 2):
            a, b = paths[image, i], paths[image, j]
            if a.ndim == 1:
                a, b = a[None], b[None]
            else:
                a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
            values = []
            for u, v in zip(a, b):
                denominator = np.linalg.norm(u) * np.linalg.norm(v)
                values.append(abs(u @ v) / denominator if denominator else np.nan)
            per_pair.append(values)
        out.append(per_pair)
    return np.array(out)


@pytest.mark.parametrize("layer_shape", [(7,), (4, 5, 3), (2, 2, 16)])
def test_pairwise_abs_cosine_matches_a_loop(layer_shape):
    paths = np.random.default_rng(0).standard_normal((3, 5, *layer_shape))
    paths[1, 2] = 0.0  # a zero vector: undefined cosine
    ours = csc.pairwise_abs_cosine(paths)
    expected = naive_abs_cosine(paths)
    assert ours.shape == (3, 10, int(np.prod(layer_shape[:-1])) if len(layer_shape) > 1 else 1)
    np.testing.assert_allclose(ours, expected, equal_nan=True)
    assert np.isnan(ours[1, [1, 4, 7, 8]]).all()  # pairs containing vector 2
    assert len(csc.csc_per_location(paths)) == np.isfinite(expected).sum()


@pytest.mark.parametrize("block_bytes", [10 ** 9, 3 * 9 * 5 * 16 * 8, 9 * 5 * 16 * 8, 2 * 5 * 16 * 8, 1])
def test_pairwise_abs_cosine_is_the_same_in_blocks(monkeypatch, block_bytes):
    # Blocks of all images, of three (a shorter last block), of one image each, of two of an
    # image's 9 locations (a shorter last block), of one location.
    paths = np.random.default_rng(2).standard_normal((4, 5, 3, 3, 16)).astype(np.float32)
    paths[2, 1, 1, 1] = 0.0
    expected = naive_abs_cosine(paths.astype(np.float64))
    monkeypatch.setattr(csc, "COSINE_BLOCK_BYTES", block_bytes)
    ours = csc.pairwise_abs_cosine(paths)
    np.testing.assert_allclose(ours, expected, rtol=1e-13, atol=1e-15, equal_nan=True)
    monkeypatch.setattr(csc, "COSINE_BLOCK_BYTES", 10 ** 9)
    np.testing.assert_array_equal(ours, csc.pairwise_abs_cosine(paths))  # bit for bit


def test_aligned_paths_have_csc_one():
    direction = np.random.default_rng(1).standard_normal((6, 6, 8))
    scales = np.array([1.0, -2.0, 0.5, 3.0, -0.1])
    paths = scales[None, :, None, None, None] * direction[None, None]
    np.testing.assert_allclose(csc.csc_per_location(paths), 1.0)


@pytest.mark.parametrize("channels, expected", [(2, np.cos(np.pi / 4)), (3, 0.5)])
def test_baseline_matches_geometry(channels, expected):
    # |cos| of random directions: angle uniform in 2-D; |cos| uniform on [0, 1] in 3-D.
    assert csc.csc_baseline(channels, n_pairs=200_000) == pytest.approx(expected, abs=0.005)


def test_baseline_shrinks_like_one_over_sqrt_dimension():
    # For large c, cos ~ N(0, 1/c): median |cos| = 0.6745 / sqrt(c).
    assert csc.csc_baseline(512, n_pairs=20_000) == pytest.approx(0.6745 / np.sqrt(512), rel=0.03)


def test_summary():
    values = np.concatenate([np.full(90, 0.5), np.full(10, 0.99995), [np.nan]])
    summary = csc.csc_summary(values)
    assert summary["n"] == 100 and summary["median"] == 0.5
    assert summary["histogram"]["counts"][5] == 90 and summary["histogram"]["counts"][-1] == 10
    assert summary["percentiles"]["100"] == pytest.approx(0.99995)


def test_histogram_summary_matches_raw_values():
    rng = np.random.default_rng(0)
    # |cos| spread over many orders of magnitude of 1 - |cos|, as in converging layers.
    values = 1 - 10.0 ** -rng.uniform(0, 12, size=20_000)
    values[:3000] = rng.random(3000)
    fine, coarse = csc.histograms(values)
    from_histograms = csc.summary_from_histograms(fine, coarse)
    exact = csc.csc_summary(values)
    assert from_histograms["n"] == exact["n"] and from_histograms["histogram"] == exact["histogram"]
    for p in ("1", "10", "50", "80", "99"):
        gap_ours = 1 - from_histograms["percentiles"][p]
        gap_exact = 1 - exact["percentiles"][p]
        assert gap_ours == pytest.approx(gap_exact, rel=0.05), p  # the 0.02 bins in log10 resolve 5%
    # Histograms of several images add up to the histogram of all values.
    fine_a, _ = csc.histograms(values[:5000])
    fine_b, _ = csc.histograms(values[5000:])
    np.testing.assert_array_equal(fine_a + fine_b, fine)


def test_fully_converged_values_land_in_the_last_bin():
    fine, coarse = csc.histograms(np.array([1.0, 1.0 - 1e-17, -1.0]))
    assert fine[-1] == 3 and coarse[-1] == 3
    assert csc.quantile_from_histogram(fine, 0.5) == pytest.approx(1.0)


def test_row_histograms_equal_numpy_histogram_per_row():
    rng = np.random.default_rng(1)
    values = 1 - 10.0 ** -rng.uniform(0, 17, size=(6, 40, 25))
    values[0, :5, 0] = rng.random(5)
    values[1, :4, 0] = [0.0, 1.0, -1.0, 0.5]  # bin edges and the closed last bin
    values[2, :3, 1] = np.nan
    values[3] = np.nan  # a row without any finite value
    # values exactly on fine edges: 1 - 10**-t for t on the grid
    values[4, :10, 2] = 1 - 10.0 ** -csc.FINE_EDGES[::80][:10]
    fine, coarse = csc.row_histograms(values)
    for row in range(len(values)):
        kept = values[row][~np.isnan(values[row])]
        expected_fine, _ = np.histogram(csc.dissimilarity(kept), bins=csc.FINE_EDGES)
        expected_coarse, _ = np.histogram(np.clip(np.abs(kept), 0, 1), bins=csc.HISTOGRAM_BINS)
        np.testing.assert_array_equal(fine[row], expected_fine)
        np.testing.assert_array_equal(coarse[row], expected_coarse)
    assert fine[3].sum() == 0 and fine[0].sum() == 40 * 25


def test_bin_indices_of_a_grid_that_is_not_linspace_are_those_of_searchsorted():
    edges = csc.FINE_EDGES.copy()
    edges[300] = np.nextafter(edges[300], np.inf)  # not np.linspace's arithmetic any more: gathered edges
    values = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                             np.random.default_rng(0).uniform(0, 16, 1000)])
    values = values[(values >= edges[0]) & (values <= edges[-1])]
    expected = np.minimum(np.searchsorted(edges, values, side="right") - 1, len(edges) - 2)
    np.testing.assert_array_equal(csc._uniform_bin_index(values, edges), expected)


def test_bin_indices_on_and_next_to_every_edge_are_those_of_searchsorted():
    for edges in (csc.FINE_EDGES, np.asarray(csc.HISTOGRAM_BINS)):
        values = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        values = values[(values >= edges[0]) & (values <= edges[-1])]
        expected = np.minimum(np.searchsorted(edges, values, side="right") - 1, len(edges) - 2)
        index = csc._uniform_bin_index if len(edges) > 100 else csc._few_bin_index
        np.testing.assert_array_equal(index(values, edges), expected)
