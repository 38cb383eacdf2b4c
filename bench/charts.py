"""Issue-13 figure: the experiment page's first draw in Chromium with 10 series of 20,000 points each, and a reload
while the job is still sending points, against the same page of a job with no points, in the same run.

The time is the page's own: from navigation start to the end of its first draw (the series API's answer drawn by
Plotly), which experiment.js stamps on the chart as data-first-draw-ms. Writes "Charts" in bench/RESULTS.md.
Run: make bench-live (or pytest bench/charts.py -m slow -s).
"""
import math
import statistics
import sys
import threading
import time

import pytest
from django.db import connections

from bench.results import cpu_count, cpu_name, write_results
from tests.browser import log_in
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SERIES, POINTS, RUNS = 10, 20_000, 5
# Four time series (resources, a GPU's power) and six metric series (a per-step loss smoothed on the page).
TIME_SERIES = ["job/cpu_percent", "job/rss_mb", "host/cpu_percent", "gpu0/power_w"]
METRIC_SERIES = ["train/train_loss", "train/val_loss", "train/val_accuracy", "prune/sparsity",
                 "prune/params_ratio", "budget/fidelity"]


def _fill(experiment_id: int, t0: float) -> None:
    for name in TIME_SERIES + METRIC_SERIES:
        kind = "resource" if name in TIME_SERIES else "metric"
        for start in range(0, POINTS, 5000):
            services.events_record(experiment_id=experiment_id, records=[
                {"t": t0 + i * 0.05, "kind": kind, "name": name, "step": i, "value": 1 + math.sin(i / 50) / 3}
                for i in range(start, start + 5000)])
    services.events_record(experiment_id=experiment_id, records=[
        {"t": t0 + k * 100, "kind": "stage", "name": f"step {k}"} for k in range(10)])


SPLIT = """() => { const api = performance.getEntriesByType('resource').find(e => e.name.includes('/series/'));
    const plotly = performance.getEntriesByType('resource').find(e => e.name.includes('plotly'));
    return {api_start: api.startTime, api_end: api.responseEnd, plotly_end: plotly.responseEnd}; }"""


def _draw_ms(page, url: str, splits: list | None = None) -> float:
    page.goto(url)
    page.wait_for_function("() => document.getElementById('chart').dataset.firstDrawMs", timeout=60_000)
    if splits is not None:
        splits.append(page.evaluate(SPLIT))
    return float(page.get_attribute("#chart", "data-first-draw-ms"))


@pytest.fixture
def runs(carol):
    model = ready_model(carol)
    busy = Experiment.objects.create(owner=carol, model=model, recipe="prune", status=Experiment.Status.RUNNING)
    empty = Experiment.objects.create(owner=carol, model=model, recipe="prune", status=Experiment.Status.RUNNING)
    t0 = time.time() - 2000
    _fill(busy.pk, t0)
    return busy, empty, t0


def test_first_draw_of_ten_series_of_twenty_thousand_points(runs, browser_page, web_server):
    busy, empty, t0 = runs
    stop = threading.Event()

    def still_running():  # the job goes on sending points while the page reloads
        i = POINTS
        while not stop.is_set():
            services.events_record(experiment_id=busy.pk, records=[
                {"t": t0 + i * 0.05, "kind": "resource", "name": name, "value": 1.0} for name in TIME_SERIES])
            i += 1
            time.sleep(0.05)
        connections.close_all()

    try:
        log_in(browser_page, web_server)
        baseline = [_draw_ms(browser_page, f"{web_server}/experiments/{empty.pk}/") for _ in range(RUNS + 1)][1:]
        splits = []
        first = [_draw_ms(browser_page, f"{web_server}/experiments/{busy.pk}/", splits) for _ in range(RUNS + 1)][1:]
        api = statistics.median(split["api_end"] - split["api_start"] for split in splits[1:])
        sender = threading.Thread(target=still_running, daemon=True)
        sender.start()
        reload = []
        for _ in range(RUNS):
            browser_page.reload()
            browser_page.wait_for_function("() => document.getElementById('chart').dataset.firstDrawMs")
            reload.append(float(browser_page.get_attribute("#chart", "data-first-draw-ms")))
        stop.set()
        sender.join()
        drawn = browser_page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].reduce((n, d) =>"
                                      " n + d.data.reduce((m, t) => m + (t.x ? t.x.length : 0), 0), 0)")
    finally:
        stop.set()
        connections.close_all()
    figures = {name: statistics.median(values) for name, values in
               (("empty", baseline), ("first", first), ("reload", reload))}
    rows = [f"| first draw, {SERIES} series x {POINTS:,} points (median of {RUNS}) | {figures['first']:.0f} ms "
            f"({figures['first'] / figures['empty']:.2f}x the empty page's {figures['empty']:.0f} ms; "
            f"{drawn:,} points drawn after downsampling; of it the series API {api:.0f} ms) | < 1 s | "
            f"{_met(figures['first'] < 1000)} |",
            f"| reload mid-run, points still arriving (median of {RUNS}) | {figures['reload']:.0f} ms "
            f"({figures['reload'] / figures['first']:.2f}x the first draw) | < 1 s | "
            f"{_met(figures['reload'] < 1000)} |"]
    text = "\n".join(["| what | measured | target | met |", "|---|---|---|---|", *rows])
    print(text)
    write_results("Charts", "The experiment page in Debian's Chromium (headless), real web server and PostgreSQL: "
                  "navigation start to the end of the first draw, as the page stamps it (bench/charts.py). "
                  f"Machine: {cpu_name()}, {cpu_count()} cores, Python {sys.version.split()[0]}, "
                  f"{time.strftime('%Y-%m-%d')}.\n\n{text}\n")


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"
