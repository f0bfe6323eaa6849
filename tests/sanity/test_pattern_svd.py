"""Figure 3's numbers: singular value ratios, 1x1 slicing and the inter-layer chain members."""
import numpy as np
import pytest

from sanity import pattern_svd


def _with_singular_values(values, shape, seed):
    """A random matrix of ``shape`` whose singular values are ``values``."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(shape[0], shape[0])))
    v, _ = np.linalg.qr(rng.normal(size=(shape[1], shape[1])))
    s = np.zeros(shape)
    s[np.arange(len(values)), np.arange(len(values))] = values
    return u @ s @ v.T


def test_singular_value_ratio_of_known_spectra():
    assert pattern_svd.singular_value_ratio(_with_singular_values([5.0, 1.0, 0.5], (4, 3), 0)) == pytest.approx(5.0)
    assert pattern_svd.singular_value_ratio(_with_singular_values([2.0, 2.0], (2, 5), 1)) == pytest.approx(1.0)
    assert pattern_svd.singular_value_ratio(np.outer([1.0, 2.0], [3.0, 4.0, 5.0])) > 1e12  # rank 1 (rounding)
    assert np.isnan(pattern_svd.singular_value_ratio(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="2-D"):
        pattern_svd.singular_value_ratio(np.zeros(3))


def test_interlayer_members_rebuild_the_product():
    """M_l M_{l+1} = U_l sqrt(S_l) T_l sqrt(S_{l+1}) V_{l+1}: T_l is the chain's inner member."""
    rng = np.random.default_rng(2)
    matrices = [rng.normal(size=(6, 5)), rng.normal(size=(5, 4)), rng.normal(size=(4, 3))]
    members = pattern_svd.interlayer_members(matrices)
    assert len(members) == 2
    for l, member in enumerate(members):
        u, s, _ = np.linalg.svd(matrices[l], full_matrices=False)
        _, s_next, v_next = np.linalg.svd(matrices[l + 1], full_matrices=False)
        rebuilt = u @ np.diag(np.sqrt(s)) @ member @ np.diag(np.sqrt(s_next)) @ v_next
        np.testing.assert_allclose(rebuilt, matrices[l] @ matrices[l + 1], atol=1e-12)
    with pytest.raises(ValueError, match="do not chain"):
        pattern_svd.interlayer_members([rng.normal(size=(3, 4)), rng.normal(size=(5, 2))])


def test_slicing_takes_centre_taps_and_the_centre_location_of_a_flattened_map():
    rng = np.random.default_rng(3)
    conv1, conv2 = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=(3, 3, 4, 5))
    dense = rng.normal(size=(3 * 3 * 5, 6))  # after Flatten of a 3x3x5 map
    sliced = pattern_svd.sliced_chain([conv1, conv2, dense])
    np.testing.assert_array_equal(sliced[0], conv1[1, 1])
    np.testing.assert_array_equal(sliced[1], conv2[1, 1])
    np.testing.assert_array_equal(sliced[2], dense.reshape(3, 3, 5, 6)[1, 1])
    assert pattern_svd.as_matrix(conv2).shape == (36, 5)


def test_pattern_singular_values_on_rank_one_patterns():
    """Rank-1 patterns give a huge sigma1/sigma2 for A, and A (.) W has the ratio of its own matrix."""
    rng = np.random.default_rng(4)
    kernels = {"conv": rng.normal(size=(3, 3, 2, 4)), "fc": rng.normal(size=(3 * 3 * 4, 5))}
    patterns = {"conv": np.ones((3, 3, 2, 1)) * rng.normal(size=(1, 1, 1, 4)),
                "fc": np.outer(rng.normal(size=36), rng.normal(size=5))}
    result = pattern_svd.pattern_singular_values(kernels, patterns)
    assert result["layers"] == ["conv", "fc"] and result["pairs"] == ["conv->fc"]
    assert all(r > 1e10 for r in result["full"]["A"])
    expected = pattern_svd.singular_value_ratio(pattern_svd.as_matrix(kernels["conv"] * patterns["conv"]))
    assert result["full"]["A*W"][0] == pytest.approx(expected)
    assert result["sliced"]["W"][0] == pytest.approx(pattern_svd.singular_value_ratio(kernels["conv"][1, 1]))
    assert len(result["interlayer"]["W"]) == 1


def test_pattern_singular_values_names_missing_and_misshapen_patterns():
    kernels = {"fc1": np.ones((4, 3)), "fc2": np.ones((3, 2))}
    with pytest.raises(ValueError, match="fc2"):
        pattern_svd.pattern_singular_values(kernels, {"fc1": np.ones((4, 3))})
    with pytest.raises(ValueError, match=r"fc1.*\(3, 4\).*\(4, 3\)"):
        pattern_svd.pattern_singular_values(kernels, {"fc1": np.ones((3, 4)), "fc2": np.ones((3, 2))})


def test_report_claims_read_the_pattern_svd_summary():
    from sanity import report
    summary = {"layers": ["a", "b", "c"], "pairs": ["a->b", "b->c"],
               "full": {"A": [10.0, 7.0, 2.0], "W": [1.5, 1.2, 1.1], "A*W": [3.0, 2.0, 1.0]},
               "sliced": {"A": [9.0, 8.0, 2.0], "W": [1.5, 1.2, 1.1], "A*W": [3.0, 1.0, 1.5]}}
    dominant, larger = report._pattern_svd_claims(summary)
    assert dominant.reproduced is True and "2 of 3" in dominant.measured  # all but one layer above 6
    assert larger.reproduced is True and "2 of 3" in larger.measured
    summary["full"]["A"] = [10.0, 2.0, 2.0]
    summary["sliced"]["A*W"] = [1.0, 1.0, 1.5]
    dominant, larger = report._pattern_svd_claims(summary)
    assert dominant.reproduced is False and larger.reproduced is False
