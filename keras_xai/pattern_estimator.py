r"""The PatternNet / PatternAttribution estimator in NumPy: patterns from streamed statistics.

Patterns (two-component estimator ``S_a+-``, eqs. 9 and 40-41)
----------------------------------------------------------------
For every kernel layer, unit ``j`` with weight vector ``w_j``, input ``x`` (for a Conv2D: every
input patch, so each output position counts as one sample) and bias-free output ``y_j = w_j^T x``,
the statistics are taken over the samples where the unit is *active*, ``E_+`` (see below)::

    cov_j = E_+[x y_j] - E_+[x] E[y_j]
    a_j   = cov_j / (w_j^T cov_j)

This is what iNNvestigate 1.0.x computes (``tools/pattern.py``, ``pattern_type="relu"``):

- ``E[y_j]`` is the mean over *all* samples (``mean_y="all"``, the default; Kindermans et al.'s
  formula). Sixt et al. write ``E_+[y]`` in eq. 40; ``mean_y="active"`` gives that variant, for
  which ``a_j = cov_+[x] w_j / (w_j^T cov_+[x] w_j)`` (eq. 41) holds exactly.
- A unit is active where the input of the ReLU that follows the layer is > 0. That ReLU is found by
  walking from the layer through a fused activation, ``BatchNormalization`` and ``Add`` (the layers
  iNNvestigate's activation search walks through); a layer not followed by a ReLU (the logits)
  uses its own output, bias included, > 0.
- Divisions by zero are guarded as in iNNvestigate: ``a / (b + [b == 0])``; a unit that is never
  active gets a zero pattern.
- ``pattern_type="linear"`` uses every sample (the linear estimator ``S_a``, eq. 9 with the plain
  covariance).

The statistics are streamed (:meth:`keras_xai.pattern.PatternAnalyzer.fit`): per batch the engine
adds ``sum x``, ``sum x y`` (computed like a kernel gradient, without extracting patches), the counts
and ``sum y`` into float64 accumulators, so memory does not depend on the number of images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Estimators :meth:`~keras_xai.pattern.PatternAnalyzer.fit` offers (iNNvestigate 1.x's ``pattern_type``).
PATTERN_TYPES = ("relu", "linear")
#: Which mean of the output the covariance subtracts (see the module docstring).
MEAN_Y_CHOICES = ("all", "active")


@dataclass
class PatternStatistics:
    """Streaming sums for one kernel layer (float64).

    Attributes
    ----------
    rows : float
        Number of samples seen (for a Conv2D: images x output positions).
    active : array (units,)
        How many of them had the unit active.
    sum_x, sum_xy : arrays shaped like the kernel
        Sum over active samples of the input (patch) ``x`` and of ``x * y_j``.
    sum_y, sum_y_active : arrays (units,)
        Sum of the bias-free output ``y_j`` over all samples and over the active ones.
    """

    rows: float
    active: np.ndarray
    sum_x: np.ndarray
    sum_xy: np.ndarray
    sum_y: np.ndarray
    sum_y_active: np.ndarray


def _guarded(denominator: np.ndarray) -> np.ndarray:
    # iNNvestigate's safe_divide: a / (b + [b == 0]).
    return denominator + (denominator == 0)


def patterns_from_statistics(statistics: PatternStatistics, kernel: np.ndarray, mean_y: str = "all") -> np.ndarray:
    """The pattern ``A`` (shaped like ``kernel``) of the two-component estimator.

    ``a_j = cov_j / (w_j^T cov_j)`` with ``cov_j = E_+[x y_j] - E_+[x] m_j`` and ``m_j = E[y_j]``
    (``mean_y="all"``, iNNvestigate 1.x) or ``E_+[y_j]`` (``"active"``, Sixt et al. eq. 40).
    Units never active get a zero pattern.
    """
    if mean_y not in MEAN_Y_CHOICES:
        raise ValueError(f"mean_y must be one of {MEAN_Y_CHOICES}, got {mean_y!r}")
    kernel = np.asarray(kernel, dtype=np.float64)
    units = kernel.shape[-1]
    active = _guarded(np.asarray(statistics.active, dtype=np.float64))
    mean_x = np.reshape(statistics.sum_x, (-1, units)) / active
    mean_xy = np.reshape(statistics.sum_xy, (-1, units)) / active
    if mean_y == "all":
        mean_of_y = np.asarray(statistics.sum_y) / max(float(statistics.rows), 1.0)
    else:
        mean_of_y = np.asarray(statistics.sum_y_active) / active
    covariance = mean_xy - mean_x * mean_of_y
    along_weights = np.sum(kernel.reshape(-1, units) * covariance, axis=0)
    return (covariance / _guarded(along_weights)).reshape(kernel.shape)
