"""Min/max bucket downsampling (M4): a 100,000-point line drawn from 2,000 points that look the same on screen.

Pure Python, no Django. A series is cut into buckets of consecutive points; each bucket keeps its first, last,
lowest and highest point, so every spike and dip survives (the global minimum and maximum included) and the
line enters and leaves each bucket where the full line does.

Buckets hold a power-of-two number of points, counted from the series' first point: bucket b at level L holds
points b·2^L … (b+1)·2^L − 1. So a bucket's summary (`Extremes`) never changes once its points are in, two
neighbours at level L join into exactly one bucket at level L+1 (`regroup`), and points appended to a growing
series touch only its last bucket. That is what lets the event writer keep a long series' buckets up to date as
points arrive (webapp.services.chart_tiles) and the first draw read a few hundred summaries instead of 200,000
points. Buckets by count rather than by x: the sampler and the training steps space points evenly, where the two
agree; a burst of points in a short x span gets more of the drawn points than it would by x.

The result is a subsequence of the input, so its order is kept; equal values resolve to the earliest point, so
the same input always gives the same output.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_LIMIT = 2000
POINTS_PER_BUCKET = 4  # first, last, lowest, highest

Point = tuple[int, float, float]  # (position: seq or index, x, y)


@dataclass(slots=True)
class Extremes:
    """A bucket of consecutive points as drawn: how many, and its first, last, lowest and highest point (the
    earliest of equal values)."""

    count: int
    first: Point
    last: Point
    low: Point
    high: Point

    @classmethod
    def of(cls, point: Point) -> "Extremes":
        return cls(1, point, point, point, point)

    def then(self, later: "Extremes") -> "Extremes":
        """This bucket joined with the points that follow it. The database merges a stored bucket with the
        points of a new batch by the same rule (webapp.services.chart_tiles)."""
        return Extremes(self.count + later.count, self.first, later.last,
                        later.low if later.low[2] < self.low[2] else self.low,
                        later.high if later.high[2] > self.high[2] else self.high)

    def points(self) -> list[Point]:
        return [self.first, self.last, self.low, self.high]


def buckets_of(points: Iterable[Point], level: int, start: int = 0) -> dict[int, Extremes]:
    """The buckets at `level` of points that are the series' points number start, start+1, … (in that order)."""
    buckets: dict[int, Extremes] = {}
    for n, point in enumerate(points, start):
        b = n >> level
        bucket = buckets.get(b)
        if bucket is None:
            buckets[b] = Extremes.of(point)
            continue
        bucket.count += 1
        bucket.last = point
        if point[2] < bucket.low[2]:
            bucket.low = point
        elif point[2] > bucket.high[2]:
            bucket.high = point
    return buckets


def regroup(buckets: dict[int, Extremes], levels_up: int) -> dict[int, Extremes]:
    """The buckets `levels_up` levels above these: each the join of the 2^levels_up below it, in order."""
    joined: dict[int, Extremes] = {}
    for b in sorted(buckets):
        above = b >> levels_up
        joined[above] = joined[above].then(buckets[b]) if above in joined else buckets[b]
    return joined


def draw_level(count: int, limit: int) -> int:
    """The level a series of `count` points is drawn at: the smallest whose buckets number at most
    limit / POINTS_PER_BUCKET (buckets of 8 points or more whenever count > limit)."""
    buckets = limit // POINTS_PER_BUCKET
    level = 0
    while (1 << level) * buckets < count:
        level += 1
    return level


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
    buckets = buckets_of(zip(range(len(x)), x, y, strict=True), draw_level(len(x), limit))
    return sorted({point[0] for bucket in buckets.values() for point in bucket.points()})
