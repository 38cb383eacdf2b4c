"""Real Celery worker processes beat, die and stop; the API tells which (heartbeat every 0.5 s in tests)."""
import os
import signal
import socket
import time
import uuid

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tasks import isolation
from tests import processes
from tests.modelfiles import EXAMPLE_SHAPE, linear_torchscript_bytes
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)
WINDOW_S = settings.WORKER_HEARTBEAT_S * settings.WORKER_OFFLINE_AFTER_MISSED


def _extra_worker(process_logs, tag: str):
    """A worker of its own name on a queue of its own, so it never takes the session worker's jobs."""
    node = f"{tag}-{uuid.uuid4().hex[:8]}"
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-{node}"
    process = processes.start_worker(process_logs / f"{node}.log", queue=queue, node=f"{node}@%h")
    return process, f"{node}@", queue


def _find(api, *, prefix: str = "", queue: str = "") -> dict | None:
    response = api.get("/api/workers/")
    assert response.status_code == 200, response.content
    return next((w for w in response.json() if (prefix and w["name"].startswith(prefix))
                 or (queue and queue in w["queues"])), None)


def _in_state(api, prefix: str, state: str) -> dict | None:
    worker = _find(api, prefix=prefix)
    return worker if worker and worker["state"] == state else None


def test_a_killed_worker_turns_offline_after_its_missed_beats(alice_api, process_logs):
    process, prefix, queue = _extra_worker(process_logs, "killed")
    try:
        seen = wait_until(lambda: _in_state(alice_api, prefix, "online"), timeout=30, what="the first beat")
        assert seen["queues"] == [queue] and seen["host"] == socket.gethostname() and seen["pid"] == process.pid
        assert seen["load"]["cpu_count"] == os.cpu_count() and seen["load"]["rss_mb"] > 20
        assert all(set(device) == {"index", "name", "memory_mb"} for device in seen["devices"])
        assert seen["current_job"] is None and seen["stopped_at"] is None
        assert seen["isolation"] == isolation.describe()  # what the worker found at start-up, in words
        wait_until(lambda: _find(alice_api, prefix=prefix)["last_heartbeat"] != seen["last_heartbeat"],
                   timeout=10, interval=0.1, what="a second beat")

        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed_at = time.monotonic()
        gone = wait_until(lambda: _in_state(alice_api, prefix, "offline"), timeout=15, interval=0.1,
                          what="the killed worker to show offline")
        elapsed = time.monotonic() - killed_at
    finally:
        processes.stop(process)
    # Offline once the last beat is older than 3 beats: the last one came at most one beat before the kill.
    assert WINDOW_S - settings.WORKER_HEARTBEAT_S - 0.3 <= elapsed <= WINDOW_S + 3, elapsed
    assert gone["stopped_at"] is None and gone["seconds_since_heartbeat"] >= WINDOW_S


def test_a_worker_stopped_with_sigterm_reads_stopped(alice_api, process_logs):
    process, prefix, _ = _extra_worker(process_logs, "stopped")
    try:
        wait_until(lambda: _in_state(alice_api, prefix, "online"), timeout=30, what="the first beat")
    finally:
        processes.stop(process)
    assert process.returncode == 0
    stopped = _in_state(alice_api, prefix, "stopped")
    assert stopped is not None, _find(alice_api, prefix=prefix)
    time.sleep(WINDOW_S + 0.5)  # no late beat undid it, and it never turns "offline"
    assert _in_state(alice_api, prefix, "stopped") is not None


def _upload_ready_model(api, content: bytes) -> dict:
    response = api.post("/api/models/", {"file": SimpleUploadedFile("big.pt", content), "name": "wide-mlp",
                                         "input_shape": EXAMPLE_SHAPE}, format="multipart")
    assert response.status_code == 201, response.content
    url = f"/api/models/{response.json()['id']}/"
    model = wait_until(lambda: (m := api.get(url).json())["status"] != "pending" and m, timeout=90,
                       what="the inspection")
    assert model["status"] == "ready", model["error"]
    return model


def _both_views(alice_api, bob_api, experiment_id: int):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    alices, bobs = _find(alice_api, queue=queue), _find(bob_api, queue=queue)
    job = alices and alices["current_job"]
    if job and job.get("id") == experiment_id and bobs["current_job"] == {"busy": True}:
        return alices, bobs
    return None


def test_the_owner_sees_the_job_the_worker_runs_and_bob_sees_busy(celery_worker, alice_api, bob_api):
    model = _upload_ready_model(alice_api, linear_torchscript_bytes(hidden=2048))
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize", "config": {}},
                              format="json")
    assert response.status_code == 201, response.content
    experiment_id = response.json()["id"]

    alices, bobs = wait_until(lambda: _both_views(alice_api, bob_api, experiment_id), timeout=120,
                              interval=0.1, what="the running job on the workers list")
    job = alices["current_job"]
    assert job["recipe"] == "quantize" and job["model"] == "wide-mlp" and 0 <= job["progress"] <= 1
    assert job["url"].endswith(f"/experiments/{experiment_id}/")
    assert alices["name"] == bobs["name"] == Experiment.objects.get(pk=experiment_id).worker  # the node name
    assert "wide-mlp" not in str(bobs)

    wait_until(lambda: alice_api.get(f"/api/experiments/{experiment_id}/").json()["status"] == "succeeded",
               timeout=180, what="the job to finish")
    idle = wait_until(lambda: (w := _find(alice_api, queue=settings.CELERY_TASK_DEFAULT_QUEUE))
                      and w["current_job"] is None and w, timeout=10, what="the worker to be idle again")
    assert idle["state"] == "online"
