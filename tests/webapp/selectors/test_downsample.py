"""Min/max bucket downsampling: at most N points, every bucket's extremes, the input's order, the same answer twice.

Inputs are finite numbers (no NaN: events come out of PostgreSQL's jsonb, which refuses NaN and infinity).
"""
import math
import random

import pytest

from webapp.selectors.downsample import (
    DEFAULT_LIMIT,
    Extremes,
    buckets_of,
    downsample,
    downsample_indexes,
    draw_level,
    regroup,
)


def _noisy(n: int, seed: int = 7) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    x = [i * 0.25 for i in range(n)]
    y = [math.sin(i / 500) * 50 + rng.gauss(0, 5) for i in range(n)]
    return x, y


def test_a_long_series_comes_back_at_most_n_points_in_x_order():
    x, y = _noisy(100_000)
    xs, ys = downsample(x, y)
    assert 0.4 * DEFAULT_LIMIT < len(xs) <= DEFAULT_LIMIT
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # x order, no point twice
    kept = dict(zip(x, y, strict=True))
    assert all(kept[xi] == yi for xi, yi in zip(xs, ys, strict=True))  # real points, not averages


def test_the_global_minimum_and_maximum_survive_even_as_single_spikes():
    x, y = _noisy(50_000)
    y[12_345], y[40_000] = 1e6, -1e6
    _, ys = downsample(x, y, 100)
    assert max(ys) == 1e6 and min(ys) == -1e6


def test_every_bucket_keeps_its_first_last_lowest_and_highest_point():
    x = list(range(1000))
    y = [(i * 7919) % 101 for i in x]  # jumpy, with many ties
    keep = set(downsample_indexes(x, y, 80))
    width = 64  # 20 buckets for 1,000 points: the power of two above 1000 / 20
    for start in range(0, 1000, width):
        bucket = range(start, min(start + width, 1000))
        values = [y[i] for i in bucket]
        assert {bucket[0], bucket[-1]} <= keep
        assert bucket[values.index(min(values))] in keep and bucket[values.index(max(values))] in keep


def test_the_same_input_gives_the_same_output():
    x, y = _noisy(30_000)
    assert downsample(x, y, 500) == downsample(list(x), list(y), 500)


def test_appending_points_leaves_the_earlier_buckets_alone():
    x, y = _noisy(20_000)
    before = downsample_indexes(x[:15_000], y[:15_000], 400)
    after = downsample_indexes(x, y, 400)  # same power-of-two width: only the tail moves
    settled = [i for i in before if i < 14_000]
    assert settled == [i for i in after if i < 14_000]


def test_buckets_are_runs_of_consecutive_points_whatever_their_x():
    # A burst of samples in one second and a quiet hour: each bucket holds the same number of points.
    x = [i / 10_000 for i in range(10_000)] + [1 + i for i in range(3600)]
    y = [float(i % 13) for i in range(len(x))]
    keep = downsample_indexes(x, y, 200)
    assert len(keep) <= 200
    size = 1 << draw_level(len(x), 200)  # 50 buckets: the power of two above 13,600 / 50
    assert size == 512 and {i // size for i in keep} == set(range(-(-len(x) // size)))


def test_neighbouring_buckets_join_into_the_buckets_above_them():
    x, y = _noisy(5000)
    points = list(zip(range(5000), x, y, strict=True))
    for level in range(3, 12):
        below = buckets_of(points, level)
        for up in (1, 2, 5):
            assert regroup(below, up) == buckets_of(points, level + up)


def test_buckets_built_batch_by_batch_equal_the_buckets_of_the_whole_series():
    # As the event writer keeps them: each batch's buckets joined to the stored ones (webapp.services.chart_tiles).
    x, y = _noisy(3000)
    y[100] = y[2000] = min(y) - 1  # a tie across batches resolves to the earlier point
    points = list(zip(range(3000), x, y, strict=True))
    stored: dict[int, Extremes] = {}
    for start in range(0, 3000, 77):
        for b, bucket in buckets_of(points[start:start + 77], 5, start=start).items():
            stored[b] = stored[b].then(bucket) if b in stored else bucket
    assert stored == buckets_of(points, 5) and stored[100 >> 5].low[0] == 100


def test_the_level_a_series_is_drawn_at():
    assert draw_level(2001, 2000) == 3  # just over the limit: buckets of 8 points
    assert draw_level(200_000, 2000) == 9 and (1 << 9) * 500 >= 200_000 > (1 << 8) * 500
    assert draw_level(9000, 400) == 7  # 100 buckets of 128 points


@pytest.mark.parametrize("n", [0, 1, 5, DEFAULT_LIMIT])
def test_a_series_no_longer_than_n_comes_back_unchanged(n):
    x, y = _noisy(n)
    assert downsample(x, y) == (x, y)


def test_all_equal_values_and_all_equal_x_are_fine():
    xs, ys = downsample(list(range(10_000)), [3.0] * 10_000, 40)
    assert 0 < len(xs) <= 40 and set(ys) == {3.0} and xs[0] == 0 and xs[-1] == 9_999
    xs, ys = downsample([5.0] * 10_000, [float(i % 17) for i in range(10_000)], 40)
    assert 0 < len(xs) <= 40 and set(xs) == {5.0} and min(ys) == 0.0 and max(ys) == 16.0


def test_mismatched_lengths_and_a_tiny_limit_are_refused():
    with pytest.raises(ValueError, match="x has 3 points but y has 2"):
        downsample([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 8"):
        downsample([1, 2, 3], [1, 2, 3], 4)
