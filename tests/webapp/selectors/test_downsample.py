"""Min/max bucket downsampling: at most N points, every bucket's extremes, the input's order, the same answer twice.

Inputs are finite numbers (no NaN: events come out of PostgreSQL's jsonb, which refuses NaN and infinity).
"""
import math
import random

import pytest

from webapp.selectors.downsample import DEFAULT_LIMIT, downsample, downsample_indexes


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
    width = 64  # 20 buckets for 999 units of x: the power of two above 999 / 19
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


def test_x_buckets_follow_time_not_the_number_of_points():
    # A burst of samples in one second and a quiet hour: the quiet hour keeps its own points.
    x = [i / 10_000 for i in range(10_000)] + [1 + i for i in range(3600)]
    y = [float(i % 13) for i in range(len(x))]
    xs, _ = downsample(x, y, 200)
    assert len(xs) <= 200 and sum(1 for v in xs if v > 1) > 100


@pytest.mark.parametrize("n", [0, 1, 5, DEFAULT_LIMIT])
def test_a_series_no_longer_than_n_comes_back_unchanged(n):
    x, y = _noisy(n)
    assert downsample(x, y) == (x, y)


def test_all_equal_values_and_all_equal_x_are_fine():
    xs, ys = downsample(list(range(10_000)), [3.0] * 10_000, 40)
    assert 0 < len(xs) <= 40 and set(ys) == {3.0} and xs[0] == 0 and xs[-1] == 9_999
    xs, ys = downsample([5.0] * 10_000, [float(i % 17) for i in range(10_000)], 40)
    # one bucket: its first, last, lowest and highest points (here the first is also the lowest)
    assert xs == [5.0] * 3 and ys == [0.0, 16.0, float(9_999 % 17)]


def test_mismatched_lengths_and_a_tiny_limit_are_refused():
    with pytest.raises(ValueError, match="x has 3 points but y has 2"):
        downsample([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 8"):
        downsample([1, 2, 3], [1, 2, 3], 4)
