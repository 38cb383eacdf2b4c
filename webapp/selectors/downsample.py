"""Min/max bucket downsampling (M4): a 100,000-point line drawn from 2,000 points that look the same on screen.

Pure Python, no Django. The x range is cut into buckets of equal width; each bucket keeps its first, last,
lowest and highest point, so every spike and dip survives (the global minimum and maximum included) and the
line enters and leaves each bucket where the full line does.

Assumptions: x and y are finite numbers (no NaN, no infinity: the events come out of PostgreSQL's jsonb, which
refuses them) and the points come in x order, as events come in seq order. The result is a subsequence of the
input, so that order is kept; equal values resolve to the earliest point, so the same input always gives the
same output. Bucket widths are powers of two anchored at the smallest x: appending points to a growing series
changes only its last bucket, until the series gets so long that the width doubles and neighbours merge.
"""
import math
from collections.abc import Sequence

DEFAULT_LIMIT = 2000
POINTS_PER_BUCKET = 4  # first, last, lowest, highest


def downsample(x: Sequence[float], y: Sequence[float], limit: int = DEFAULT_LIMIT) -> tuple[list, list]:
    """At most `limit` points of the series (x, y); a series that short already comes back unchanged."""
    keep = downsample_indexes(x, y, limit)
    return [x[i] for i in keep], [y[i] for i in keep]


def downsample_indexes(x: Sequence[float], y: Sequence[float], limit: int = DEFAULT_LIMIT) -> list[int]:
    """The indexes of the points to draw, ascending."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} points but y has {len(y)}")
    if limit < 2 * POINTS_PER_BUCKET:
        raise ValueError(f"limit must be at least {2 * POINTS_PER_BUCKET}, not {limit}")
    if len(x) <= limit:
        return list(range(len(x)))
    buckets = limit // POINTS_PER_BUCKET
    return sorted(_extremes_by_bucket(x, y, buckets))


def _extremes_by_bucket(x: Sequence[float], y: Sequence[float], buckets: int) -> set[int]:
    start = min(x)
    width = bucket_width(max(x) - start, buckets)
    first, last, low, high = ([-1] * buckets for _ in range(4))
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        b = min(int((xi - start) / width), buckets - 1) if width else 0
        if first[b] < 0:
            first[b] = last[b] = low[b] = high[b] = i
            continue
        last[b] = i
        if yi < y[low[b]]:
            low[b] = i
        elif yi > y[high[b]]:
            high[b] = i
    return {i for column in (first, last, low, high) for i in column if i >= 0}


def bucket_width(span: float, buckets: int) -> float:
    """The smallest power of two that fits the span into `buckets` buckets (0 when all x are equal)."""
    if span <= 0:
        return 0.0
    return 2.0 ** math.ceil(math.log2(span / (buckets - 1)))
