"""GET /api/workers/ and the heartbeat service: one row per worker, its state from the beat's age, and the
current job named only to its owner."""
import logging
import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tasks.gpu_telemetry import visible_indices
from tasks.heartbeat import Heartbeat, machine_load
from tests.factories import ready_model
from tests.processes import free_port
from webapp import services
from webapp.clock import db_now
from webapp.models import Experiment, Worker

pytestmark = pytest.mark.django_db
WINDOW_S = settings.WORKER_HEARTBEAT_S * settings.WORKER_OFFLINE_AFTER_MISSED
GPU = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}


def _beat(name="gpu0@box", **overrides) -> Worker:
    fields = {"host": "box", "pid": 4242, "started_at": timezone.now() - timedelta(minutes=5),
              "queues": ["gpu0"], "devices": [GPU], "load": {"cpu_percent": 12.5, "cpu_count": 16},
              "isolation": "bubblewrap: no network"}
    return services.worker_heartbeat(name=name, **{**fields, **overrides})


def _age(name: str, seconds: float) -> None:
    Worker.objects.filter(name=name).update(last_heartbeat=timezone.now() - timedelta(seconds=seconds))


def _listed(api, name: str) -> dict:
    response = api.get("/api/workers/")
    assert response.status_code == 200, response.content
    return next(w for w in response.json() if w["name"] == name)


def _running(owner, *, worker: str, model_name="mlp") -> Experiment:
    return Experiment.objects.create(owner=owner, model=ready_model(owner, name=model_name), recipe="quantize",
                                     status=Experiment.Status.RUNNING, worker=worker, progress=0.42,
                                     started_at=timezone.now())


def test_a_worker_whose_clock_runs_behind_is_kept_on_the_databases_clock(monkeypatch):
    """The beat is written in the worker's process: its clock two minutes behind, the row still holds the database's
    time of the beat, and the worker's start moved onto the same clock (five minutes up, as the worker counts)."""
    true_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: true_now() - timedelta(minutes=2))
    worker = _beat(started_at=timezone.now() - timedelta(minutes=5))
    database_now = db_now()
    assert abs(database_now - worker.last_heartbeat) < timedelta(seconds=5)
    assert abs(database_now - timedelta(minutes=5) - worker.started_at) < timedelta(seconds=5)


def test_a_heartbeat_creates_the_row_then_updates_it(alice):
    first = _beat(load={"cpu_percent": 10.0})
    services.worker_stopped(name="gpu0@box")
    _age("gpu0@box", 30)
    second = _beat(load={"cpu_percent": 80.0}, queues=["gpu0", "cpu"])
    assert Worker.objects.filter(name="gpu0@box").count() == 1 and second.pk == first.pk
    row = Worker.objects.get(name="gpu0@box")
    assert row.load == {"cpu_percent": 80.0} and row.queues == ["gpu0", "cpu"] and row.devices == [GPU]
    assert row.stopped_at is None  # a worker that beats again is running again
    assert (timezone.now() - row.last_heartbeat).total_seconds() < 5


def test_the_heartbeat_records_the_job_this_worker_runs(alice):
    mine = _running(alice, worker="gpu0@box")
    _running(alice, worker="gpu1@box")
    assert _beat().current_experiment_id == mine.pk
    Experiment.objects.filter(pk=mine.pk).update(status=Experiment.Status.SUCCEEDED)
    assert _beat().current_experiment_id is None


def test_a_worker_is_online_until_it_misses_its_beats(alice_api):
    _beat()
    assert _listed(alice_api, "gpu0@box")["state"] == "online"
    _age("gpu0@box", WINDOW_S - 0.3)
    assert _listed(alice_api, "gpu0@box")["state"] == "online"
    _age("gpu0@box", WINDOW_S + 0.3)
    listed = _listed(alice_api, "gpu0@box")
    assert listed["state"] == "offline"
    assert WINDOW_S + 0.2 <= listed["seconds_since_heartbeat"] < WINDOW_S + 5


def test_a_clean_stop_reads_stopped_even_right_after_a_beat(alice_api):
    _beat()
    services.worker_stopped(name="gpu0@box")
    listed = _listed(alice_api, "gpu0@box")
    assert listed["state"] == "stopped" and listed["stopped_at"] is not None and listed["current_job"] is None


def test_the_answer_has_every_field_of_a_worker(alice_api):
    _beat()
    listed = _listed(alice_api, "gpu0@box")
    assert set(listed) == {"name", "host", "pid", "queues", "devices", "load", "isolation", "state",
                           "last_heartbeat", "seconds_since_heartbeat", "started_at", "stopped_at", "current_job"}
    assert (listed["host"], listed["pid"], listed["queues"], listed["devices"]) == ("box", 4242, ["gpu0"], [GPU])
    assert listed["isolation"] == "bubblewrap: no network"
    assert listed["current_job"] is None


def test_alice_sees_her_job_and_bob_only_sees_busy(alice, alice_api, bob_api):
    experiment = _running(alice, worker="gpu0@box", model_name="alices-secret-resnet")
    _beat()
    job = _listed(alice_api, "gpu0@box")["current_job"]
    assert job["id"] == experiment.pk and job["recipe"] == "quantize" and job["model"] == "alices-secret-resnet"
    assert job["progress"] == 0.42 and job["url"].endswith(f"/experiments/{experiment.pk}/")

    response = bob_api.get("/api/workers/")
    bobs = next(w for w in response.json() if w["name"] == "gpu0@box")
    assert bobs["current_job"] == {"busy": True}
    assert b"alices-secret-resnet" not in response.content
    assert f"/experiments/{experiment.pk}/".encode() not in response.content


def test_a_worker_that_went_offline_shows_no_job(alice, alice_api):
    _running(alice, worker="gpu0@box")
    _beat()
    _age("gpu0@box", WINDOW_S + 1)
    assert _listed(alice_api, "gpu0@box")["current_job"] is None


def test_the_api_needs_a_logged_in_user():
    assert APIClient().get("/api/workers/").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_a_failed_beat_is_logged_and_the_next_one_succeeds(caplog):
    heartbeat = Heartbeat(name="flaky@box", read_queues=lambda: ["flaky"], interval=0.5)
    reachable = connection.settings_dict
    connection.close()
    connection.settings_dict = {**reachable, "PORT": str(free_port())}  # nothing listens there: the db is "down"
    try:
        with caplog.at_level(logging.WARNING, logger="tasks.heartbeat"):
            assert heartbeat.beat() is False and heartbeat.beat() is False
    finally:
        connection.close()
        connection.settings_dict = reachable
    assert "heartbeat of flaky@box failed" in caplog.text and heartbeat.failures == 2
    assert heartbeat.beat() is True and heartbeat.failures == 0
    row = Worker.objects.get(name="flaky@box")
    assert row.queues == ["flaky"] and row.pid == os.getpid() and row.load["cpu_count"] == os.cpu_count()


def test_the_load_measures_this_machine_and_this_process_tree(settings):
    import psutil

    settings.WORKER_HOST_ADDRESS = "10.0.0.5"
    load = machine_load(psutil.Process())
    assert set(load) == {"cpu_percent", "memory_percent", "memory_total_mb", "loadavg_1m", "rss_mb", "cpu_count",
                         "host_address"}
    assert load["host_address"] == "10.0.0.5"
    assert load["cpu_count"] == os.cpu_count() and 0 < load["memory_percent"] < 100 and load["rss_mb"] > 10
    assert load["memory_total_mb"] == round(psutil.virtual_memory().total / 2**20)


@pytest.mark.parametrize("cuda_visible, visible", [
    (None, [0, 1, 2]), ("", []), ("2", [2]), ("0,2", [0, 2]), ("-1", []), ("1,junk,2", [1]),
    ("GPU-bbbb", [1]), ("GPU-cc,0", [2, 0]), ("MIG-x", ["MIG-x"]),
])
def test_a_pinned_worker_reports_only_its_gpus(cuda_visible, visible):
    assert visible_indices(cuda_visible, [f"GPU-{letter * 8}" for letter in "abc"]) == visible
