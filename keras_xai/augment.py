"""Input augmentations of the wrapper methods: SmoothGrad's noise and Integrated Gradients' path.

Both average an inner analysis over ``count`` modified copies of the input. The analyzer evaluates
the copies in chunks of batches, so memory stays bounded whatever ``count`` is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


class Augmentation:
    """Base class: ``count`` copies of ``x``, and what to do with the mean at the input."""

    count: int

    def copies(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the ``count`` modified copies of the batch ``x``."""
        raise NotImplementedError

    def finish_input(self, mean_relevance: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Turn the mean relevance at the input into the attribution."""
        return mean_relevance

    def check(self, sample_shape: tuple) -> None:
        """Raise ValueError if the augmentation cannot apply to samples of ``sample_shape``."""


@dataclass(frozen=True)
class GaussianNoise(Augmentation):
    r"""SmoothGrad (Smilkov et al. 2017): :math:`\frac{1}{n}\sum_{k=1}^{n} g(x + \epsilon_k)`,
    :math:`\epsilon_k \sim \mathcal{N}(0, \sigma^2 I)`.

    Parameters
    ----------
    count : int
        Number of noisy copies ``n`` (iNNvestigate's ``augment_by_n``).
    noise_scale : float
        Standard deviation :math:`\sigma` (in input units).
    seed : int or None
        Seed of a fresh ``np.random.Generator`` per call (None: unpredictable noise).
    """

    count: int = 64
    noise_scale: float = 1.0
    seed: int | None = None

    def copies(self, x):
        generator = np.random.default_rng(self.seed)
        for _ in range(self.count):
            yield x + generator.normal(0.0, self.noise_scale, size=x.shape).astype(x.dtype)


@dataclass(frozen=True)
class StraightPath(Augmentation):
    r"""Integrated Gradients (Sundararajan et al. 2017) as a left Riemann sum, as in iNNvestigate:
    :math:`(x - \bar x) \odot \frac{1}{n}\sum_{k=0}^{n-1} g\!\left(\bar x + \tfrac{k}{n}(x - \bar x)\right)`.

    Parameters
    ----------
    count : int
        Number of steps ``n``.
    reference : float or array
        Reference input :math:`\bar x`, broadcast to the batch.
    """

    count: int = 64
    reference: object = 0.0

    def check(self, sample_shape):
        reference = np.asarray(self.reference)
        if not np.issubdtype(reference.dtype, np.number) or not np.isfinite(reference).all():
            raise ValueError(f"integrated_gradients: reference_inputs must be finite numbers, got {self.reference!r}")
        known = tuple(1 if d is None else d for d in sample_shape)
        try:  # a leading batch dimension is allowed (one reference per sample)
            fits = np.broadcast_shapes(reference.shape, (1, *known))[1:] == known
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"integrated_gradients: reference_inputs of shape {reference.shape} does not fit "
                             f"the model's samples {tuple(sample_shape)}; give a number, one sample, or one "
                             "reference per sample of the batch")

    def _reference(self, x):
        reference = np.asarray(self.reference, dtype=x.dtype)
        try:
            return np.broadcast_to(reference, x.shape)
        except ValueError:
            raise ValueError(f"integrated_gradients: reference_inputs of shape {reference.shape} does not "
                             f"broadcast to the batch {x.shape}") from None

    def copies(self, x):
        reference = self._reference(x)
        difference = x - reference
        for k in range(self.count):
            yield reference + difference * x.dtype.type(k / self.count)

    def finish_input(self, mean_relevance, x):
        return mean_relevance * (x - self._reference(x))
