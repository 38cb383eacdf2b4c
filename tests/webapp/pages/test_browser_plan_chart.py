"""A finished plan search in Chromium: every point on the throughput / p95 chart, the chosen plan starred."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import finished_experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _point(variant, threads, batch, p50, p95):
    return {"variant": variant, "threads": threads, "batch": batch, "p50_ms": p50, "p95_ms": p95, "runs": 20,
            "stopped_early": False, "throughput_per_s": round(batch * 1000 / p50, 2)}


@pytest.fixture
def searched(carol):
    points = [_point("eager", 1, 1, 0.4, 0.5), _point("eager", 1, 32, 3.0, 3.5), _point("eager", 2, 32, 2.0, 2.6),
              _point("channels_last", 2, 32, 1.5, 1.9), _point("channels_last", 2, 128, 5.0, 6.5)]
    return finished_experiment(carol, "parallelize", "inference plan search", {
        "plan_search": {"plan": points[3], "baseline": points[0], "points": points, "speedup": 8.53,
                        "p95_budget_ms": 4.0, "not_measured": []}})


def test_the_plan_chart_shows_every_point_and_stars_the_chosen_one(searched, browser_page, web_server, tmp_path):
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/{searched.pk}/")
    browser_page.wait_for_selector("#plan-chart:not([hidden]) .main-svg")
    traces = browser_page.evaluate("""() => document.getElementById('plan-chart').data.map(
        (t) => ({name: t.name, x: t.x, y: t.y}))""")
    assert [trace["name"] for trace in traces] == ["eager", "channels_last", "chosen plan"]
    assert sum(len(trace["x"]) for trace in traces[:-1]) == 5
    assert traces[-1]["x"] == [1.9] and traces[-1]["y"] == [21333.33]
    budget = browser_page.evaluate("document.getElementById('plan-chart').layout.shapes[0].x0")
    assert budget == 4.0
    save_screenshot(browser_page, "plan-search.png", tmp_path)
