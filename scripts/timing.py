"""Wall-clock timing shared by the benchmark scripts, so that every script times a call the same way."""
from __future__ import annotations

import statistics
import time


def seconds(call) -> float:
    """Wall time of one ``call()``."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def middle(values):
    """The middle value of the sorted ``values`` (the upper one of an even count); None if empty."""
    return sorted(values)[len(values) // 2] if values else None


def median_seconds(call, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call (kernels created, memory allocated)."""
    call()
    return statistics.median(seconds(call) for _ in range(repeats))
