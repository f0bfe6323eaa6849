"""The kinds of canonical step, and every family of kinds the engine and the methods test, in one place.

A step's ``kind`` is a :class:`Kind`; code asks about a family (``step.kind.has_kernel``) rather than
listing kinds, so that a new layer type is classified here once. ``Kind`` is a ``str`` enum: a
custom selector written as ``step.kind == "dense"`` keeps working.
"""
from __future__ import annotations

from enum import Enum


class Kind(str, Enum):
    INPUT = "input"
    DENSE = "dense"
    CONV2D = "conv2d"
    BATCH_NORM = "batch_norm"  # the per-channel affine map of BatchNormalization in inference mode
    ADD = "add"  # a linear layer with identity weights
    AVERAGE_POOLING = "average_pooling"
    GLOBAL_AVERAGE_POOLING = "global_average_pooling"
    MAX_POOLING = "max_pooling"
    FLATTEN = "flatten"
    RESHAPE = "reshape"
    ZERO_PADDING = "zero_padding"
    CONCATENATE = "concatenate"
    ACTIVATION = "activation"  # elementwise, an Activation/ReLU layer or split off a Dense/Conv2D
    LSTM = "lstm"  # a whole LSTM layer, unrolled over time

    def __str__(self) -> str:
        return self.value

    @property
    def is_linear(self) -> bool:
        """Its operation is a :class:`~keras_xai.operations.LinearOperation`, ``z = W x + b``."""
        return self in _LINEAR

    @property
    def has_kernel(self) -> bool:
        """Dense or Conv2D: a linear layer with a learned kernel."""
        return self in _KERNEL

    @property
    def is_average_pooling(self) -> bool:
        """Average pooling, local or global (linear, implicit weights ``1/n``)."""
        return self in _AVERAGE_POOLING

    @property
    def is_structural(self) -> bool:
        """It only moves values around; every method propagates through it with the gradient."""
        return self in _STRUCTURAL

    @property
    def only_rearranges(self) -> bool:
        """Its output is its input rearranged (reshaped or zero-padded): a first-layer rule looks
        through it, and the gradient is its exact inverse map on relevance."""
        return self in _REARRANGING

    @property
    def only_reshapes(self) -> bool:
        """Flatten or Reshape: the values unchanged, in another shape."""
        return self in _RESHAPING

    @property
    def keeps_nonnegative(self) -> bool:
        """Its output is >= 0 wherever all its inputs are (pooling, rearranging, concatenating, adding)."""
        return self in _KEEPS_NONNEGATIVE

    @property
    def ends_image(self) -> bool:
        """After it, the tensor is no longer tracked as an image whose windows must fit
        (:func:`keras_xai.canonize.check_spatial_sizes`)."""
        return self in _ENDS_IMAGE


_KERNEL = frozenset({Kind.DENSE, Kind.CONV2D})
_AVERAGE_POOLING = frozenset({Kind.AVERAGE_POOLING, Kind.GLOBAL_AVERAGE_POOLING})
_LINEAR = _KERNEL | _AVERAGE_POOLING | {Kind.BATCH_NORM, Kind.ADD}
_RESHAPING = frozenset({Kind.FLATTEN, Kind.RESHAPE})
_REARRANGING = _RESHAPING | {Kind.ZERO_PADDING}
_STRUCTURAL = _REARRANGING | {Kind.MAX_POOLING, Kind.CONCATENATE}
_KEEPS_NONNEGATIVE = _STRUCTURAL | _AVERAGE_POOLING | {Kind.ADD}
_ENDS_IMAGE = _RESHAPING | {Kind.DENSE, Kind.GLOBAL_AVERAGE_POOLING, Kind.LSTM}
