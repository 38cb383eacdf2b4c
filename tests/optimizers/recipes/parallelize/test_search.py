"""The plan search's rules with made-up timings: where a line stops, what the budget does, which plan wins."""
from optimizers.recipes.parallelize.search import Setting, Timing, Unavailable, search

# p50 per batch (ms) of each (variant, threads): per-sample time falls until batch 32, then stops falling
P50 = {("eager", 1): {1: 1.0, 8: 4.0, 32: 10.0, 128: 40.0, 512: 160.0},
       ("eager", 2): {1: 0.8, 8: 2.5, 32: 6.0, 128: 23.0, 512: 92.0},
       ("fast", 1): {1: 0.5, 8: 1.0, 32: 2.0, 128: 7.0, 512: 30.0}}


def fake_measure(asked: list):
    def measure(setting: Setting, best: float) -> Timing:
        asked.append((setting, best))
        p50 = P50[(setting.variant, setting.threads)][setting.batch]
        return Timing(p50, p50 * 1.2, 20)
    return measure


def test_a_line_stops_when_a_larger_batch_is_not_faster_per_sample():
    asked = []
    outcome = search(["eager"], [1], [1, 8, 32, 128, 512], fake_measure(asked))
    assert [setting.batch for setting, _ in asked] == [1, 8, 32, 128]  # 128 was no faster than 32: 512 skipped
    assert "batch 128 was not 5% faster" in outcome.notes[0]
    assert outcome.chosen.setting == Setting("eager", 1, 32)


def test_the_chosen_plan_is_the_best_measured_point_within_the_budget():
    outcome = search(["eager", "fast"], [1], [1, 8, 32, 128, 512], fake_measure([]),
                     budget_ms=5.0)
    within = [point for point in outcome.points if point.timing.p95_ms <= 5.0]
    assert outcome.chosen == max(within, key=lambda point: point.throughput)
    assert outcome.chosen.setting == Setting("fast", 1, 32) and outcome.chosen.timing.p95_ms <= 5.0
    assert any("broke the p95 budget" in note for note in outcome.notes)
    assert all(point.timing.p95_ms <= 5.0 or point.setting.batch in (32, 128) for point in outcome.points)


def test_the_early_stop_compares_with_points_that_could_be_chosen():
    asked = []
    search(["eager"], [1, 2], [1, 8, 32], fake_measure(asked), budget_ms=5.0)
    # eager/1 batch 32 (3,200 samples/s) broke the budget: the next points are compared with batch 8 (2,000/s)
    assert asked[3] == (Setting("eager", 2, 1), 2000.0)


def test_a_way_that_cannot_run_is_skipped_with_its_reason():
    def measure(setting, best):
        if setting.variant == "compiled":
            raise Unavailable("no C compiler")
        return Timing(1.0, 1.0, 20)
    outcome = search(["eager", "compiled"], [1], [1], measure)
    assert [point.setting.variant for point in outcome.points] == ["eager"]
    assert outcome.notes == ["compiled skipped: no C compiler"]


def test_points_past_the_search_time_are_listed_not_measured():
    ticks = iter([0.0, 0.0, 1.0, 100.0, 100.0])
    outcome = search(["eager"], [1], [1, 8, 32], fake_measure([]), seconds=10, clock=lambda: next(ticks))
    assert [point.setting.batch for point in outcome.points] == [1, 8]
    assert outcome.not_measured == [Setting("eager", 1, 32)]
    assert "ran out: 1 point(s) not measured" in outcome.notes[-1]
