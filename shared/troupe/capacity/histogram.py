"""The service time's variability, estimated from a Prometheus histogram's buckets.

Allen-Cunneen needs the squared coefficient of variation (SCV) of the service time, but a
histogram keeps only counts per bucket: neither Knative's queue-proxy nor the runtime
exports a sum of squares. Each observation is taken at its bucket's midpoint (the first
bucket's from 0, the +Inf bucket's at its lower bound), which is coarse where buckets are
wide; callers should say that the SCV is an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def histogram_scv(buckets: Sequence[tuple[float, float]]) -> float | None:
    """SCV from cumulative (upper bound, count) pairs; None when nothing was observed.

    All observations in one finite bucket give 0: the histogram cannot tell them apart.
    """
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None
    first = 0.0
    second = 0.0
    lower, below = 0.0, 0.0
    for upper, cumulative in ordered:
        count = cumulative - below
        if count > 0:
            point = lower if math.isinf(upper) else (lower + upper) / 2
            first += count * point
            second += count * point * point
        lower, below = (lower if math.isinf(upper) else upper), cumulative
    mean = first / total
    if mean <= 0:
        return None
    variance = max(second / total - mean * mean, 0.0)
    return variance / (mean * mean)
