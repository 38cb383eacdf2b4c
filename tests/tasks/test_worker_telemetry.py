"""Telemetry of real jobs on a real Celery worker: series at the job's own interval, and the summary's account."""
import statistics
from itertools import pairwise

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import ready_model
from tests.tasks.test_telemetry import JOB_SERIES, nvml_starts
from tests.waiting import wait_until
from webapp import services

pytestmark = pytest.mark.django_db(transaction=True)
INTERVAL_S = 0.2


def _settled(api, url: str, pending: tuple) -> dict | None:
    body = api.get(url).json()
    return None if body["status"] in pending else body


def _ready_model_id(api, content: bytes) -> int:
    response = api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", content), "name": "m",
                                         "input_shape": "1,64"}, format="multipart")
    assert response.status_code == 201, response.content
    url = f"/api/models/{response.json()['id']}/"
    model = wait_until(lambda: _settled(api, url, ("pending",)), timeout=90, what="the inspection")
    assert model["status"] == "ready", model["error"]
    return model["id"]


def _series_times(events: list[dict], name: str) -> list[float]:
    return [e["t"] for e in events if e["kind"] == "resource" and e["name"] == name]


def test_a_quantize_job_samples_at_its_own_interval_and_accounts_for_it(celery_worker, alice_api,
                                                                        torchscript_bytes):
    body = {"model": _ready_model_id(alice_api, torchscript_bytes), "recipe": "quantize", "config": {},
            "telemetry_interval_s": INTERVAL_S}
    response = alice_api.post("/api/experiments/", body, format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180,
                            what="the quantize job")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["telemetry_interval_s"] == INTERVAL_S
    telemetry = experiment["summary"]["telemetry"]
    events = alice_api.get(url + "events/").json()

    assert telemetry["interval_s"] == INTERVAL_S and telemetry["samples"] >= 5, telemetry
    for name in JOB_SERIES:
        times = _series_times(events, name)
        assert len(times) >= telemetry["samples"] - 1, name  # a job/ reading is skipped as the child exits
        assert 0.7 * INTERVAL_S <= statistics.median(b - a for a, b in pairwise(times)) <= 2 * INTERVAL_S
    assert len(_series_times(events, "host/memory_percent")) == telemetry["samples"]
    rss = [e["value"] for e in events if e.get("name") == "job/rss_mb"]
    assert max(rss) > 50  # the sandbox child with torch loaded

    logs = [e["message"] for e in events if e["kind"] == "log"]
    assert telemetry["note"] in logs and any(m.startswith(f"Telemetry: {telemetry['samples']} samples") for m in logs)
    if nvml_starts():
        assert telemetry["nvml"] is True and telemetry["gpus"] and telemetry["energy_j"] is not None
    else:
        assert telemetry["nvml"] is False and telemetry["gpus"] == [] and telemetry["energy_j"] is None
        assert telemetry["note"].startswith("GPU telemetry off: NVML not available (")
        assert not any(e.get("name", "").startswith("gpu") for e in events)

    cost = telemetry["overhead"]
    assert cost["ticks"] == telemetry["samples"] and 0 < cost["per_tick_ms"] <= cost["max_tick_ms"]
    assert 0 < cost["fraction"] < 0.05 and 0 <= cost["cpu_fraction"] < 0.05
    assert cost["job_wall_s"] >= telemetry["samples"] * INTERVAL_S * 0.7


def test_a_failed_job_keeps_its_telemetry(celery_worker, alice, alice_api):
    model = ready_model(alice)  # its stored file is an empty zip archive: the sandbox cannot load it
    experiment = services.experiment_create(owner=alice, model=model, recipe="quantize", config={},
                                            telemetry_interval_s=0.5)
    url = f"/api/experiments/{experiment.pk}/"
    finished = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=120, what="the job")
    assert finished["status"] == "failed" and finished["error"]
    telemetry = finished["summary"]["telemetry"]
    assert set(finished["summary"]) == {"telemetry"}
    assert telemetry["interval_s"] == 0.5 and telemetry["overhead"]["job_wall_s"] > 0
    assert telemetry["samples"] == telemetry["overhead"]["ticks"]
