"""PatternAttribution's singular values (paper section 4 and figure 3).

A matrix chain converges to rank 1 when each member has a dominant first singular value
(sigma1 / sigma2 large) and consecutive members are aligned. Figure 3 shows, per layer,
sigma1 / sigma2 of the patterns A, the weights W and PatternAttribution's A (.) W: (a) of the whole
kernels, (b) of the kernels sliced to 1x1 (the centre tap of a 3x3 convolution) and (c) of the
inter-layer chain members T_l = sqrt(S_l) V_l U_{l+1} sqrt(S_{l+1}) of the sliced matrices, where
M_l = U_l S_l V_l is the singular value decomposition of the l-th forward matrix.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .simulation import backward_matrices_from_weights

#: The three matrices of figure 3, from a layer's weights W and patterns A.
KINDS = {"A": lambda w, a: a, "W": lambda w, a: w, "A*W": lambda w, a: a * w}


def singular_value_ratio(matrix: np.ndarray) -> float:
    """sigma1 / sigma2 of a 2-D matrix (inf when sigma2 is 0, NaN for a zero matrix or one with a
    single singular value)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"singular_value_ratio needs a 2-D matrix, got shape {matrix.shape}")
    s = np.linalg.svd(matrix, compute_uv=False)
    if s.size < 2 or s[0] == 0:
        return float("nan")
    return float("inf") if s[1] == 0 else float(s[0] / s[1])


def as_matrix(kernel: np.ndarray) -> np.ndarray:
    """A Dense kernel (in, out) as it is; a Conv2D kernel (h, w, c_in, c_out) as (h * w * c_in, c_out)."""
    kernel = np.asarray(kernel)
    if kernel.ndim == 2:
        return kernel
    if kernel.ndim == 4:
        return kernel.reshape(-1, kernel.shape[-1])
    raise ValueError(f"expected a Dense (2-D) or Conv2D (4-D) kernel, got shape {kernel.shape}")


def sliced_chain(kernels) -> list:
    """Forward matrices with 3x3 kernels sliced to their centre tap (c_in, c_out), a dense kernel on a
    flattened feature map reduced to its centre location, so consecutive matrices chain."""
    return [m.T for m in reversed(backward_matrices_from_weights(kernels))]


def interlayer_members(matrices) -> list:
    """T_l = sqrt(S_l) V_l U_{l+1} sqrt(S_{l+1}) for consecutive forward matrices M_l = U_l S_l V_l."""
    decompositions = [np.linalg.svd(np.asarray(m, dtype=np.float64), full_matrices=False) for m in matrices]
    members = []
    for (_, s_l, v_l), (u_next, s_next, _) in zip(decompositions[:-1], decompositions[1:]):
        if v_l.shape[1] != u_next.shape[0]:
            raise ValueError(f"matrices do not chain: {v_l.shape[1]} outputs feed {u_next.shape[0]} inputs")
        members.append(np.sqrt(s_l)[:, None] * (v_l @ u_next) * np.sqrt(s_next)[None, :])
    return members


def pattern_singular_values(kernels: Mapping[str, np.ndarray], patterns: Mapping[str, np.ndarray]) -> dict:
    """The numbers behind figure 3.

    Parameters
    ----------
    kernels : {layer name: kernel}
        Dense / Conv2D kernels, first layer first (the model's forward order).
    patterns : {layer name: pattern}
        The fitted patterns A, shaped like the kernels (e.g. ``PatternAnalyzer.patterns``).

    Returns
    -------
    dict with "layers" (names), "full" and "sliced" ({kind: [sigma1/sigma2 per layer]}, kinds A, W, A*W)
    and "interlayer" ({kind: [ratio per consecutive pair]}, with "pairs" naming them).
    """
    layers = list(kernels)
    missing = [name for name in layers if name not in patterns]
    if missing:
        raise ValueError(f"no patterns for layer(s) {missing}; patterns cover {sorted(patterns)}")
    for name in layers:
        if np.shape(patterns[name]) != np.shape(kernels[name]):
            raise ValueError(f"layer {name!r}: pattern shape {np.shape(patterns[name])} differs from kernel "
                             f"shape {np.shape(kernels[name])}")
    result = {"layers": layers, "pairs": [f"{a}->{b}" for a, b in zip(layers[:-1], layers[1:])],
              "full": {}, "sliced": {}, "interlayer": {}}
    for kind, make in KINDS.items():
        matrices = [make(np.asarray(kernels[n], np.float64), np.asarray(patterns[n], np.float64)) for n in layers]
        result["full"][kind] = [singular_value_ratio(as_matrix(m)) for m in matrices]
        sliced = sliced_chain(matrices)
        result["sliced"][kind] = [singular_value_ratio(m) for m in sliced]
        result["interlayer"][kind] = [singular_value_ratio(t) for t in interlayer_members(sliced)]
    return result
