"""GET /api/experiments/<id>/series/ and /series.csv: the charts' first draw and the full download, owners only."""
import csv
import io
from importlib import import_module

import pytest
import requests
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import ready_model
from webapp import services
from webapp.models import ChartSeries, ChartTile, Event, Experiment
from webapp.selectors import series
from webapp.selectors.downsample import downsample

pytestmark = pytest.mark.django_db

T0 = 1_795_000_000.0


def _experiment(owner) -> Experiment:
    return Experiment.objects.create(owner=owner, model=ready_model(owner), recipe="quantize",
                                     status=Experiment.Status.RUNNING)


def _record(experiment, records):
    return services.events_record(experiment_id=experiment.pk, records=records)


def _a_small_job(experiment):
    _record(experiment, [
        {"t": T0, "kind": "status", "status": "running"},
        {"t": T0 + 0.5, "kind": "stage", "name": "calibrate"},
        {"t": T0 + 1, "kind": "resource", "name": "job/cpu_percent", "value": 50.0},
        {"t": T0 + 1, "kind": "resource", "name": "job/rss_mb", "value": 300.5},
        {"t": T0 + 1.5, "kind": "progress", "done": 1, "total": 4, "stage": "calibrate"},  # same stage: no marker
        {"t": T0 + 2, "kind": "resource", "name": "job/cpu_percent", "value": 75.0},
        {"t": T0 + 2, "kind": "resource", "name": "gpu0/power_w", "value": "n/a"},  # not a number: no point
        {"t": T0 + 2.5, "kind": "progress", "done": 2, "total": 4, "stage": "fine-tune"},  # a new stage
        {"t": T0 + 3, "kind": "metric", "name": "train/loss", "step": 10, "value": 0.9},
        {"t": T0 + 3, "kind": "metric", "name": "val/accuracy", "value": 0.8},  # no step: x is the seq
        {"t": T0 + 4, "kind": "metric", "name": "sensitivity/fc1", "value": 0.02},
        {"t": T0 + 4, "kind": "metric", "name": "sensitivity/fc2", "value": 0.3},
        {"t": T0 + 4.5, "kind": "progress", "done": 0, "total": 0},  # nothing to draw
    ])
    return _record(experiment, [{"t": T0 + 5, "kind": "log", "message": "done"}])


def test_the_series_of_a_small_job_are_shaped_for_the_charts(alice, alice_api):
    experiment = _experiment(alice)
    _a_small_job(experiment)
    response = alice_api.get(f"/api/experiments/{experiment.pk}/series/")
    assert response.status_code == 200, response.content
    body = response.json()
    accuracy_seq = Event.objects.get(experiment=experiment, record__name="val/accuracy").seq
    assert body["t0"] == T0 and body["status"] == {"status": "running", "error": ""}
    # The highest seq when the draw began, the log event's (the page draws nothing of it, and resumes after it).
    assert body["last_seq"] == Event.objects.get(experiment=experiment, kind="log").seq
    assert body["stages"] == [{"t": 0.5, "name": "calibrate", "seq": 2}, {"t": 2.5, "name": "fine-tune", "seq": 8}]
    assert body["series"] == {
        "job/cpu_percent": {"kind": "resource", "x": [1.0, 2.0], "y": [50.0, 75.0], "count": 2, "downsampled": False},
        "job/rss_mb": {"kind": "resource", "x": [1.0], "y": [300.5], "count": 1, "downsampled": False},
        "progress": {"kind": "progress", "x": [1.5, 2.5], "y": [25.0, 50.0], "count": 2, "downsampled": False},
        "train/loss": {"kind": "metric", "x": [10], "y": [0.9], "count": 1, "downsampled": False},
        "val/accuracy": {"kind": "metric", "x": [accuracy_seq], "y": [0.8], "count": 1, "downsampled": False},
        "sensitivity": {"kind": "bar", "x": ["fc1", "fc2"], "y": [0.02, 0.3], "count": 2, "downsampled": False},
    }


def test_an_experiment_without_events_has_empty_series(alice, alice_api):
    body = alice_api.get(f"/api/experiments/{_experiment(alice).pk}/series/").json()
    assert body == {"last_seq": 0, "t0": None, "series": {}, "stages": [], "status": None}


def _a_long_job(experiment, n=10_000):
    for start in range(0, n, 1000):  # the bridge writes in batches too
        _record(experiment, [
            {"t": T0 + 0.25 * i, "kind": "resource", "name": "job/cpu_percent", "value": float(i % 97)}
            for i in range(start, start + 1000)
        ])
    _record(experiment, [{"t": T0 + 0.25 * n, "kind": "resource", "name": "job/cpu_percent", "value": 1000.0},
                         {"t": T0 + 0.25 * n, "kind": "resource", "name": "job/rss_mb", "value": 10.0}])


def test_a_long_series_is_downsampled_keeping_its_extremes_and_short_ones_are_not(alice, alice_api):
    experiment = _experiment(alice)
    _a_long_job(experiment)
    body = alice_api.get(f"/api/experiments/{experiment.pk}/series/").json()
    cpu, rss = body["series"]["job/cpu_percent"], body["series"]["job/rss_mb"]
    assert cpu["downsampled"] and cpu["count"] == 10_001 and len(cpu["x"]) == len(cpu["y"]) <= 2000
    assert max(cpu["y"]) == 1000.0 and min(cpu["y"]) == 0.0
    assert cpu["x"] == sorted(cpu["x"]) and cpu["x"][0] == 0.0 and cpu["x"][-1] == 2500.0
    assert rss == {"kind": "resource", "x": [2500.0], "y": [10.0], "count": 1, "downsampled": False}
    assert body["last_seq"] == 10_002


def _csv_rows(response) -> list[list[str]]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_has_every_point_in_seq_order_in_pieces(alice, alice_api):
    experiment = _experiment(alice)
    _a_long_job(experiment)
    _a_small_job(experiment)
    response = alice_api.get(f"/api/experiments/{experiment.pk}/series.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="experiment-{experiment.pk}-series.csv"'
    pieces = list(response.streaming_content)
    assert len(pieces) >= 3  # header, then one piece per page of rows: never one string for everything
    rows = list(csv.reader(io.StringIO(b"".join(pieces).decode())))
    assert rows[0] == ["seq", "t", "kind", "name", "step", "value"]
    points = Event.objects.filter(experiment=experiment, kind__in=["resource", "metric", "progress"])
    expected = [e.seq for e in points if isinstance(e.record.get("value"), float) or e.record.get("total")]
    assert [int(row[0]) for row in rows[1:]] == expected  # every point, seq order, no duplicate
    by_name = {row[3]: row for row in rows[1:]}
    assert by_name["train/loss"][2:] == ["metric", "train/loss", "10", "0.9"]
    assert by_name["progress"][2:] == ["progress", "progress", "", "50.0"]
    assert float(by_name["job/rss_mb"][1]) == T0 + 1


def test_the_csv_of_one_series_and_of_an_unknown_one(alice, alice_api):
    experiment = _experiment(alice)
    _a_small_job(experiment)
    url = f"/api/experiments/{experiment.pk}/series.csv"
    rows = _csv_rows(alice_api.get(url, {"name": "job/cpu_percent"}))
    assert [row[3:] for row in rows[1:]] == [["job/cpu_percent", "", "50.0"], ["job/cpu_percent", "", "75.0"]]
    assert _csv_rows(alice_api.get(url, {"name": "gpu7/util_percent"})) == [list(rows[0])]  # just the header
    too_long = alice_api.get(url, {"name": "x" * 201}, HTTP_ACCEPT="text/csv")
    assert too_long.status_code == 400 and "name" in too_long.json()


def test_bob_gets_404_for_alices_series_and_nobody_logged_out_gets_in(alice, bob_api):
    experiment = _experiment(alice)
    _a_small_job(experiment)
    for url in (f"/api/experiments/{experiment.pk}/series/", f"/api/experiments/{experiment.pk}/series.csv"):
        assert bob_api.get(url).status_code == 404
        assert APIClient().get(url).status_code in (401, 403)
    assert bob_api.get(f"/api/experiments/{experiment.pk}/series.csv", HTTP_ACCEPT="text/csv").status_code == 404
    assert bob_api.get("/api/experiments/999999/series/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_web_server_streams_the_csv(alice, web_server):
    # Under ASGI a plain iterator would be read whole before sending: this takes the real server's path.
    experiment = _experiment(alice)
    _a_long_job(experiment, n=12_000)
    _, token = AuthToken.objects.create(alice)
    with requests.get(f"{web_server}/api/experiments/{experiment.pk}/series.csv", stream=True, timeout=30,
                      headers={"Authorization": f"Token {token}"}) as response:
        assert response.status_code == 200 and "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        lines = b"".join(response.iter_content(chunk_size=None)).decode().splitlines()
    assert len(lines) == 1 + 12_002 and lines[-1].endswith(",resource,job/rss_mb,,10.0")
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 12_003))


def test_a_long_series_is_drawn_from_its_buckets_exactly_as_the_python_buckets_cut_it(alice):
    """The first draw reads the buckets the event writer kept (webapp.services.chart_tiles): the same points as
    webapp.selectors.downsample picks from the whole series, for a time series and a stepped metric, written in
    batches of every size (a series outgrows its top level in the middle of a batch and at its end)."""
    experiment = _experiment(alice)
    values = [float((i * 7919) % 1000) + (500.0 if i % 97 == 0 else 0.0) for i in range(9000)]
    values[4321] = values[7000] = -1.0  # the lowest value twice, in different batches: the earlier one is drawn
    sizes = [1, 7, 8, 16, 1, 31, 64, 128, 256, 511, 1000, 1, 2000, 3000, 1976]
    assert sum(sizes) == 9000
    start = 0
    for size in sizes:
        _record(experiment, [{"t": T0 + i * 0.5, "kind": "resource", "name": "job/cpu_percent", "value": values[i]}
                             for i in range(start, start + size)])
        _record(experiment, [{"t": T0 + i, "kind": "metric", "name": "train/train_loss", "step": i,
                              "value": values[-1 - i]} for i in range(start, start + size)])
        start += size
    for limit in (400, 1000, 2000):
        drawn = series.experiment_series(experiment_id=experiment.pk, limit=limit)["series"]
        cpu_x, cpu_y = downsample([T0 + i * 0.5 for i in range(9000)], values, limit=limit)
        assert drawn["job/cpu_percent"]["x"] == [round(x - T0, 3) for x in cpu_x]
        assert drawn["job/cpu_percent"]["y"] == cpu_y
        loss_x, loss_y = downsample(list(range(9000)), values[::-1], limit=limit)
        assert drawn["train/train_loss"]["x"] == loss_x and drawn["train/train_loss"]["y"] == loss_y
        assert {s["count"] for s in drawn.values()} == {9000} and all(s["downsampled"] for s in drawn.values())
        assert len(cpu_x) <= limit and max(values) in cpu_y and -1.0 in cpu_y  # the spikes survive
    assert -1.0 in drawn["job/cpu_percent"]["y"]
    assert drawn["job/cpu_percent"]["x"][drawn["job/cpu_percent"]["y"].index(-1.0)] == 4321 * 0.5


def test_the_migration_fills_the_counts_and_buckets_as_the_writer_keeps_them(alice):
    """Migration 0008's SQL and the event writer give the same counts and the same buckets."""
    experiment = _experiment(alice)
    _a_small_job(experiment)
    for start in range(0, 4500, 700):  # long at 2,100 points, a level up at 4,200
        _record(experiment, [{"t": T0 + i, "kind": "metric", "name": "train/train_loss", "step": i % 900,
                              "value": float((i * 31) % 17)} for i in range(start, min(start + 700, 4500))]
                + [{"t": T0 + i, "kind": "resource", "name": "job/rss_mb", "value": float(i % 5)}
                   for i in range(start // 2, start // 2 + 350)])  # 2,450 points: long in the last batch
    written = _chart_state(experiment)
    assert len(written[0]) == 8  # 8 series (2 sensitivity), 2 of them long: their buckets, at one level each
    assert {(name, level) for name, _, level, *_ in written[1]} == {("train/train_loss", 4), ("job/rss_mb", 3)}
    ChartSeries.objects.filter(experiment=experiment).delete()
    ChartTile.objects.filter(experiment=experiment).delete()
    with connection.cursor() as cursor:
        cursor.execute(import_module("webapp.migrations.0008_chart_tiles").BACKFILL)
    assert _chart_state(experiment) == written


def _chart_state(experiment):
    fields = [f.name for f in ChartTile._meta.fields if f.name not in ("id", "experiment")]
    return (sorted(ChartSeries.objects.filter(experiment=experiment).values_list("series", "kind", "count")),
            sorted(ChartTile.objects.filter(experiment=experiment).values_list(*fields)))


def test_the_migration_fills_the_rows_already_stored_as_new_rows_are_filled(alice):
    """Migration 0007's SQL (the rule in SQL) and chart_point (the rule in Python) give every event the same
    series, x and y."""
    experiment = _experiment(alice)
    _a_small_job(experiment)
    written = list(Event.objects.filter(experiment=experiment).order_by("seq").values_list("series", "x", "y"))
    assert sum(1 for name, _, _ in written if name) == 9  # the points of the small job
    Event.objects.filter(experiment=experiment).update(series=None, x=None, y=None)
    with connection.cursor() as cursor:
        cursor.execute(import_module("webapp.migrations.0007_event_chart_point").BACKFILL)
    assert list(Event.objects.filter(experiment=experiment).order_by("seq").values_list("series", "x", "y")) == written
