"""The experiment page's charts read at a glance (issue 13): one chart per group with its own axis, stage names that
never overprint, smoothing with the raw line kept, legends that are buttons under the chart, log scale, and charts
of the same x that zoom together. Drawn in Debian's Chromium from events written straight to the database."""
import math
import time

import pytest
from django.db import connections

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Stage names with their start, seconds after t0: short ones crowd together, as a prune's steps do.
STAGES = [("prepare", 0), ("measure original", 2), ("prune step 1/4", 10), ("prune step 2/4", 10.5),
          ("prune step 3/4", 11), ("prune step 4/4", 11.5), ("fine-tune", 12), ("save", 170),
          ("measure optimized", 171)]
STEPS = 400


def _events(t0: float) -> list[dict]:
    records = [{"t": t0 + start, "kind": "stage", "name": name} for name, start in STAGES]
    records += [{"t": t0 + i, "kind": "resource", "name": "job/cpu_percent", "value": 50.0 + 30 * math.sin(i / 9)}
                for i in range(180)]
    records += [{"t": t0 + i, "kind": "resource", "name": "job/rss_mb", "value": 300.0 + i} for i in range(180)]
    records += [{"t": t0 + i, "kind": "resource", "name": "gpu0/power_w", "value": 100.0 + i} for i in range(180)]
    # A noisy per-step loss falling from 2.3, epoch-level losses and accuracies, and the prune's ratios.
    records += [{"t": t0 + 12 + i * 0.3, "kind": "metric", "name": "prune/train_loss", "step": i,
                 "value": 2.3 * math.exp(-i / 120) + 0.3 * (-1) ** i} for i in range(STEPS)]
    for epoch, step in enumerate(range(100, STEPS + 1, 100)):
        records += [{"t": t0 + 12 + step * 0.3, "kind": "metric", "name": f"prune/{name}", "step": step, "value": value}
                    for name, value in (("val_loss", 1.5 / (epoch + 1)), ("val_accuracy", 0.29 + 0.19 * epoch),
                                        ("train_accuracy", 0.3 + 0.2 * epoch))]
    records += [{"t": t0 + 11 + k * 0.5, "kind": "metric", "name": f"prune/{name}", "step": k, "value": value}
                for k in range(4) for name, value in (("params_ratio", 1 - 0.1 * k), ("macs_ratio", 1 - 0.12 * k),
                                                      ("sparsity", 0.1 * k))]
    return sorted(records, key=lambda r: r["t"])


@pytest.fixture
def carols_run(carol):
    experiment = Experiment.objects.create(owner=carol, model=ready_model(carol), recipe="prune",
                                           status=Experiment.Status.RUNNING)
    services.events_record(experiment_id=experiment.pk, records=_events(time.time() - 600))
    return experiment


def _metas(page, chart_id: str) -> list[str]:
    return page.evaluate(f"() => document.getElementById('{chart_id}').data.map(t => t.meta)")


def _boxes_overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def _stage_label_boxes(page, chart_id: str) -> list[dict]:
    """The drawn stage names in the strip (Plotly hides those that do not fit), with their boxes on the page."""
    return page.evaluate(f"""() => [...document.querySelectorAll('#{chart_id} .barlayer text.bartext')]
        .filter(t => t.textContent && getComputedStyle(t).display !== 'none' && t.getAttribute('opacity') !== '0'
                     && t.getBoundingClientRect().width > 0)
        .map(t => {{ const r = t.getBoundingClientRect(); return {{text: t.textContent, x: r.x, y: r.y,
                                                                   width: r.width, height: r.height}}; }})""")


def test_charts_group_metrics_never_overprint_stages_and_smooth_the_noisy_loss(carols_run, browser_page,
                                                                              web_server, tmp_path):
    try:
        _readable(browser_page, web_server, carols_run, tmp_path)
    finally:
        connections.close_all()  # Playwright's loop gave this test a connection of its own; close it


def _readable(page, web_server: str, experiment, tmp_path) -> None:
    log_in(page, web_server)
    page.goto(f"{web_server}/experiments/{experiment.pk}/")
    page.wait_for_function(f"() => Number(document.getElementById('chart').dataset.lastSeq) === "
                           f"{Experiment.objects.get(pk=experiment.pk).last_seq}")

    # One chart per group, each series on the chart of its kind.
    assert set(_metas(page, "metric-loss-chart")) == {"prune/train_loss", "prune/train_loss~smoothed",
                                                      "prune/val_loss"}
    assert set(_metas(page, "metric-score-chart")) == {"prune/val_accuracy", "prune/train_accuracy"}
    assert set(_metas(page, "metric-ratio-chart")) == {"prune/params_ratio", "prune/macs_ratio", "prune/sparsity"}
    assert page.evaluate("() => document.getElementById('metric-score-chart').layout.yaxis.tickformat") == "~%"
    ticks = page.locator("#metric-score-chart .ytick text").all_text_contents()
    assert ticks and all(t.endswith("%") for t in ticks), ticks

    # The stage strip: every stage in it, the drawn names clear of each other, each inside the chart.
    assert page.evaluate("() => document.getElementById('chart').data.find(t => t.meta === 'stages').text") == \
        [name for name, _ in STAGES]
    for chart_id in ("chart", "gpu0-chart"):
        boxes = _stage_label_boxes(page, chart_id)
        assert "fine-tune" in {b["text"] for b in boxes}, (chart_id, boxes)
        _assert_apart(boxes, chart_id)
    assert page.evaluate("() => document.getElementById('chart').layout.shapes.length") == len(STAGES)

    # Legends are buttons under the chart, never over an axis; pressing one hides its series.
    legend = page.locator("#chart").locator("xpath=..").locator(".legend")
    assert legend.locator("button").all_text_contents() == ["CPU %", "RSS MB"]
    legend.locator("button", has_text="RSS MB").click()
    assert page.evaluate("() => document.getElementById('chart').data.find(t => t.meta === 'job/rss_mb').visible") \
        == "legendonly"
    assert legend.locator("button", has_text="RSS MB").get_attribute("aria-pressed") == "false"

    # Smoothing: the raw loss stays (faint), its smoothed copy follows the control; 0 gives the raw values back.
    raw = page.evaluate("() => document.getElementById('metric-loss-chart').data"
                        ".find(t => t.meta === 'prune/train_loss')")
    smoothed = page.evaluate("() => document.getElementById('metric-loss-chart').data"
                             ".find(t => t.meta === 'prune/train_loss~smoothed').y")
    assert raw["opacity"] < 0.5 and len(raw["y"]) == len(smoothed) == STEPS
    assert _roughness(smoothed) < _roughness(raw["y"]) / 2
    page.locator("#smoothing").fill("0")
    page.wait_for_function("() => document.getElementById('metric-loss-chart').data"
                           ".find(t => t.meta === 'prune/train_loss~smoothed').y[5] === "
                           "document.getElementById('metric-loss-chart').data"
                           ".find(t => t.meta === 'prune/train_loss').y[5]")
    page.locator("#smoothing").fill("0.6")

    # Log scale on the loss chart; a zoom on one time chart zooms the other.
    page.locator("#metric-loss-chart").locator("xpath=..").locator("input.log-scale").check()
    assert page.evaluate("() => document.getElementById('metric-loss-chart').layout.yaxis.type") == "log"
    page.evaluate("() => Plotly.relayout('chart', {'xaxis.range': [20, 60]})")
    page.wait_for_function("() => { const r = document.getElementById('gpu0-chart').layout.xaxis.range;"
                           " return r && r[0] === 20 && r[1] === 60; }")
    # Zoomed in on the first seconds, the short stages have room for their names: still none over another.
    page.evaluate("() => Plotly.relayout('chart', {'xaxis.range': [0, 14]})")
    page.wait_for_function("() => document.getElementById('gpu0-chart').layout.xaxis.range[1] === 14")
    for chart_id in ("chart", "gpu0-chart"):
        boxes = _stage_label_boxes(page, chart_id)
        assert {"prepare", "measure original"} <= {b["text"] for b in boxes}, (chart_id, boxes)
        _assert_apart(boxes, chart_id)
    page.evaluate("() => Plotly.relayout('chart', {'xaxis.autorange': true})")
    save_screenshot(page, "experiment-charts.png", tmp_path)


def _assert_apart(boxes: list[dict], chart_id: str) -> None:
    overlapping = [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _boxes_overlap(a, b)]
    assert not overlapping, (chart_id, overlapping)


def _roughness(values: list[float]) -> float:
    return sum(abs(b - a) for a, b in zip(values, values[1:], strict=False)) / (len(values) - 1)


def test_names_from_the_job_are_drawn_as_text_not_as_plotly_markup(carol, browser_page, web_server):
    """A job's stage and metric names reach Plotly, which reads tags such as <a href> in its text: drawn plain."""
    experiment = Experiment.objects.create(owner=carol, model=ready_model(carol), recipe="prune",
                                           status=Experiment.Status.RUNNING)
    hostile = '<a href="javascript:alert(1)">click</a>'
    t0 = time.time() - 100
    services.events_record(experiment_id=experiment.pk, records=[
        {"t": t0, "kind": "stage", "name": hostile},
        *({"t": t0 + i, "kind": "resource", "name": "job/cpu_percent", "value": 1.0} for i in range(5)),
        *({"t": t0 + i, "kind": "metric", "name": f"x/{hostile}", "step": i, "value": 1.0} for i in range(5))])
    try:
        log_in(browser_page, web_server)
        browser_page.goto(f"{web_server}/experiments/{experiment.pk}/")
        browser_page.wait_for_function(f"() => Number(document.getElementById('chart').dataset.lastSeq) === "
                                       f"{Experiment.objects.get(pk=experiment.pk).last_seq}")
        drawn = browser_page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(d => "
                                      "d.data.flatMap(t => [t.name || '', ...(Array.isArray(t.text) ? t.text : [])]))")
        assert drawn and not any("<" in text for text in drawn), drawn
        assert browser_page.locator(".js-plotly-plot a[href^='javascript']").count() == 0
    finally:
        connections.close_all()
