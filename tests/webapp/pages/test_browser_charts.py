"""The experiment page's charts in Debian's Chromium: they grow while a job runs, survive killed WebSockets
without a gap or a duplicate, and a page opened after the job draws the same series from the series API;
GPU series get a chart per GPU, stages a line on every time chart, a downsampled line a note."""
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.browser import log_in
from tests.factories import ready_model
from tests.modelfiles import linear_torchscript_bytes
from tests.waiting import wait_until
from webapp import services
from webapp.models import Event, Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HIDDEN = 2048  # a job of a few seconds: time for the chart to move and for the socket to be killed twice
SENSITIVITY = "sensitivity/"

# Per chart, per trace: the series name and its points, read from what Plotly draws.
# (Not the stage strip, nor the smoothed copy of a per-step series: drawn from the others.)
TRACES = """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')]
    .flatMap(d => d.data.filter(t => t.meta !== 'stages' && !t.meta.endsWith('~smoothed'))
                        .map(t => [t.meta, {x: Array.from(t.x), y: Array.from(t.y)}])))"""
STAGES = "() => (document.getElementById('chart').data.find(t => t.meta === 'stages') || {text: []}).text"


def _api_for(user) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user)[1]}")
    return api


def _ready_model(api) -> int:
    upload = SimpleUploadedFile("wide.pt", linear_torchscript_bytes(hidden=HIDDEN))
    response = api.post("/api/models/", {"file": upload, "name": "wide", "input_shape": "1,64"}, format="multipart")
    assert response.status_code == 201, response.content
    url = f"/api/models/{response.json()['id']}/"
    model = wait_until(lambda: (b := api.get(url).json())["status"] != "pending" and b, timeout=90,
                       what="the inspection")
    assert model["status"] == "ready", model["error"]
    return model["id"]


def _expected_counts(experiment_id: int) -> dict[str, int]:
    """The points each series should have, straight from the Event rows (the rule of webapp/selectors/series.py)."""
    counts: dict[str, int] = {}
    for record in Event.objects.filter(experiment_id=experiment_id).values_list("record", flat=True):
        name = _series_of(record)
        if name:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _series_of(record: dict) -> str | None:
    kind, value = record["kind"], record.get("value")
    if kind == "progress" and record.get("total"):
        return "progress"
    if kind not in ("resource", "metric") or not isinstance(value, int | float):
        return None
    name = record["name"]
    return "sensitivity" if kind == "metric" and name.startswith(SENSITIVITY) else name


def _kill_socket(page) -> None:
    """Close the page's WebSocket and wait for the page to open a new one by itself."""
    page.evaluate("() => { window.slimforgeSocket.killedByTest = true; window.slimforgeSocket.close(); }")
    page.wait_for_function("() => window.slimforgeSocket && !window.slimforgeSocket.killedByTest"
                           " && window.slimforgeSocket.readyState === WebSocket.OPEN", timeout=15_000)


def _points(page) -> int:
    return int(page.get_attribute("#chart", "data-points") or 0)


def _status(page) -> str:
    return page.text_content("#exp-status").strip()


def test_charts_grow_survive_killed_sockets_and_match_the_database(web_server, celery_worker, browser_page, carol):
    try:
        _grow_kill_and_compare(browser_page, web_server, carol)
    finally:
        # Under Playwright's event loop Django gave this test a connection of its own: left open, the test
        # database could not be dropped at the end of the run.
        connections.close_all()


def _grow_kill_and_compare(page, web_server: str, carol) -> None:
    log_in(page, web_server)
    api = _api_for(carol)
    response = api.post("/api/experiments/", {"model": _ready_model(api), "recipe": "quantize", "config": {}},
                        format="json")
    assert response.status_code == 201, response.content
    experiment = Experiment.objects.get(pk=response.json()["id"])
    page.goto(f"{web_server}/experiments/{experiment.pk}/")
    page.wait_for_function("() => Number(document.getElementById('chart').dataset.points) > 0", timeout=90_000)

    seen, kills = {_points(page)}, 0
    deadline = time.monotonic() + 180
    while _status(page) in ("queued", "running"):
        assert time.monotonic() < deadline, "the quantize job did not finish within 180 s"
        # The first kill at once, the next once the chart has moved since: a short job still sees both.
        if kills < 2 and len(seen) > kills:
            _kill_socket(page)
            kills += 1
        seen.add(_points(page))
        page.wait_for_timeout(100)
    assert _status(page) == "succeeded", page.text_content("#exp-error")
    assert len(seen - {0}) >= 3, f"the chart did not grow while the job ran: {sorted(seen)}"
    assert kills >= 1, "the job ended before the socket could be killed"

    last_seq = Experiment.objects.get(pk=experiment.pk).last_seq
    page.wait_for_function(f"() => Number(document.getElementById('chart').dataset.lastSeq) === {last_seq}")
    live, live_stages = page.evaluate(TRACES), page.evaluate(STAGES)
    expected = _expected_counts(experiment.pk)
    assert {name: len(t["x"]) for name, t in live.items()} == expected  # no gap, no duplicate
    assert {"job/cpu_percent", "job/rss_mb", "progress"} <= set(expected)
    cpu_x = live["job/cpu_percent"]["x"]
    assert cpu_x == sorted(cpu_x) and len(set(cpu_x)) == len(cpu_x)
    assert live_stages[:1] == ["prepare"] and len(live_stages) >= 2

    served = api.get(f"/api/experiments/{experiment.pk}/series/").json()
    assert served["last_seq"] == last_seq  # the status event closes the stream
    assert {name: s["count"] for name, s in served["series"].items()} == expected
    page.reload()  # after the job: the whole draw comes from the series API
    page.wait_for_function(f"() => Number(document.getElementById('chart').dataset.lastSeq) === {last_seq}")
    drawn = page.evaluate(TRACES)
    assert {name: len(t["x"]) for name, t in drawn.items()} == expected
    assert {name: t["y"] for name, t in drawn.items()} == {name: t["y"] for name, t in live.items()}
    assert page.evaluate(STAGES) == live_stages
    assert page.locator(".chart-note:visible").count() == 0  # nothing was downsampled

    with page.expect_download() as download:
        page.click("#series-csv")
    assert download.value.suggested_filename == f"experiment-{experiment.pk}-series.csv"
    rows = download.value.path().read_text().splitlines()
    assert rows[0] == "seq,t,kind,name,step,value" and len(rows) == 1 + sum(expected.values())


def _last_seq_drawn(page, experiment_id: int) -> None:
    last_seq = Experiment.objects.get(pk=experiment_id).last_seq
    page.wait_for_function(f"() => Number(document.getElementById('chart').dataset.lastSeq) === {last_seq}")


def _metas(page, chart_id: str) -> list[str]:
    return page.evaluate(f"() => document.getElementById('{chart_id}').data.map(t => t.meta)")


def _stage_names(page, chart_id: str) -> list[str]:
    return page.evaluate(f"() => (document.getElementById('{chart_id}').data.find(t => t.meta === 'stages')"
                         " || {text: []}).text")


def test_one_chart_per_gpu_live_stage_lines_and_the_downsampling_note(web_server, browser_page, carol):
    try:
        _gpu_charts(browser_page, web_server, carol)
    finally:
        connections.close_all()  # see above


def _gpu_charts(page, web_server: str, carol) -> None:
    experiment = Experiment.objects.create(owner=carol, model=ready_model(carol), recipe="quantize",
                                           status=Experiment.Status.RUNNING)
    t0 = time.time() - 1000

    def record(records):
        services.events_record(experiment_id=experiment.pk, records=records)

    record([{"t": t0, "kind": "stage", "name": "calibrate"}])
    record([{"t": t0 + i * 0.25, "kind": "resource", "name": "job/cpu_percent", "value": float(i % 50)}
            for i in range(2500)])
    record([{"t": t0 + i, "kind": "resource", "name": f"gpu0/{measure}", "value": 10.0 + i}
            for i in range(10) for measure in ("util_percent", "power_w")])
    log_in(page, web_server)
    page.goto(f"{web_server}/experiments/{experiment.pk}/")
    _last_seq_drawn(page, experiment.pk)
    assert sorted(_metas(page, "gpu0-chart")) == ["gpu0/power_w", "gpu0/util_percent", "stages"]
    assert page.locator("#gpu1-chart").count() == 0
    note = page.locator(".chart-note:visible")
    assert note.count() == 1 and "of 2,500 points (CPU %)" in note.text_content()
    assert note.locator("a").get_attribute("href") == f"/api/experiments/{experiment.pk}/series.csv"

    # Live: a second GPU appears, a new stage begins, the long line grows, and a further host of a multi-host job
    # (its readings named host2/...) gets its own resource chart and GPU charts.
    record([{"t": t0 + 700, "kind": "stage", "name": "fine-tune"},
            {"t": t0 + 701, "kind": "resource", "name": "gpu1/temperature_c", "value": 61.0},
            {"t": t0 + 701, "kind": "resource", "name": "job/cpu_percent", "value": 99.0},
            {"t": t0 + 701, "kind": "resource", "name": "host2/gpu0/util_percent", "value": 80.0},
            {"t": t0 + 701, "kind": "resource", "name": "host2/job/cpu_percent", "value": 97.0}])
    _last_seq_drawn(page, experiment.pk)
    assert sorted(_metas(page, "gpu1-chart")) == ["gpu1/temperature_c", "stages"]
    assert sorted(_metas(page, "host2-gpu0-chart")) == ["host2/gpu0/util_percent", "stages"]
    assert sorted(_metas(page, "host2-chart")) == ["host2/job/cpu_percent", "stages"]
    headings = page.locator("figure.chart-box h3").all_inner_texts()
    assert "Host 2 · GPU 0" in headings and "Host 2: job and host resources" in headings
    assert "host2/job/cpu_percent" not in _metas(page, "chart")  # the first host's chart keeps to its own
    for chart_id in ("chart", "gpu0-chart", "gpu1-chart", "host2-gpu0-chart", "host2-chart"):
        assert _stage_names(page, chart_id) == ["calibrate", "fine-tune"], chart_id
    assert "of 2,501 points (CPU %)" in note.text_content()
