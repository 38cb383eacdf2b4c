"""Cancelling on a real worker: a running fine-tune stops at its next step, a queued job never starts, and the
worker goes on with the next job."""
import time

import psutil
import pytest
from django.conf import settings

from tests.tasks.worker_jobs import model_and_digits, settled, submit_prune
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _training(api, url) -> bool:
    return any(e["kind"] == "metric" and e["name"] == "fine-tune/train_loss" for e in api.get(url + "events/").json())


def test_cancel_a_running_fine_tune_and_a_queued_job_then_the_worker_takes_the_next(celery_worker, alice_api,
                                                                                      tmp_path):
    model, dataset = model_and_digits(alice_api, tmp_path)
    long_run = submit_prune(alice_api, model, dataset, epochs=500, early_stopping_patience=0)
    wait_until(lambda: _training(alice_api, long_run), timeout=180, what="the fine-tune to train")

    queued = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize", "config": {}},
                            format="json").json()
    cancelled_before_start = alice_api.post(f"/api/experiments/{queued['id']}/cancel/").json()
    assert cancelled_before_start["status"] == "cancelled" and cancelled_before_start["cancelled_by"] == "alice"
    following = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize", "config": {}},
                               format="json").json()

    job_processes = [p for p in psutil.Process(celery_worker.pid).children(recursive=True)
                     if "optimizers.job_child" in p.cmdline()]
    assert job_processes  # bubblewrap and the fine-tune inside it
    asked = time.monotonic()
    response = alice_api.post(long_run + "cancel/")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert response.json()["cancel_requested_at"] and response.json()["cancelled_by"] == "alice"
    stopped = wait_until(lambda: settled(alice_api, long_run, ("queued", "running")), timeout=60, what="the cancel")
    took = time.monotonic() - asked
    assert stopped["status"] == "cancelled" and stopped["error"] == "" and stopped["cancelled_by"] == "alice"
    assert took < settings.CANCEL_GRACE_S  # at a step boundary, not by the hard stop
    logs = [e["message"] for e in alice_api.get(long_run + "events/").json() if e["kind"] == "log"]
    assert any("stopped at a step boundary" in line for line in logs), logs
    status_events = [e for e in alice_api.get(long_run + "events/").json() if e["kind"] == "status"]
    assert status_events[-1]["status"] == "cancelled" and status_events[-1]["note"] == "cancelled by alice"
    assert not (settings.CHECKPOINT_ROOT / str(stopped["id"])).exists()  # its partial files are gone
    assert not [p for p in job_processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    after = wait_until(lambda: settled(alice_api, f"/api/experiments/{following['id']}/", ("queued", "running")),
                       timeout=120, what="the next job")
    assert after["status"] == "succeeded", after["error"]
    never_ran = alice_api.get(f"/api/experiments/{queued['id']}/").json()
    assert never_ran["status"] == "cancelled" and never_ran["started_at"] is None
    assert alice_api.post(f"/api/experiments/{after['id']}/cancel/").status_code == 409  # nothing left to cancel
