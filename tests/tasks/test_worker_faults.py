"""Faults survived, with real processes: the worker's pool process killed with SIGKILL in the middle of a
fine-tune; the job is started again (attempt 2 of 3), resumes from its checkpoint and succeeds."""
import os
import signal
import time

import psutil
import pytest

from tests.tasks.worker_jobs import model_and_digits, settled, submit_prune
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _pool_process_running_the_job(worker) -> psutil.Process | None:
    """The worker's pool process whose descendants include the job's sandbox."""
    for pool in psutil.Process(worker.pid).children():
        if any("optimizers.job_child" in p.cmdline() for p in pool.children(recursive=True)):
            return pool
    return None


def test_a_pool_process_killed_mid_job_is_survived(celery_worker, alice_api, tmp_path):
    model, dataset = model_and_digits(alice_api, tmp_path)
    url = submit_prune(alice_api, model, dataset, epochs=40, early_stopping_patience=0)

    def training():
        events = alice_api.get(url + "events/").json()
        return any(e["kind"] == "metric" and e["name"] == "fine-tune/train_loss" for e in events)

    wait_until(training, timeout=180, what="the fine-tune to train")
    pool = wait_until(lambda: _pool_process_running_the_job(celery_worker), timeout=10, what="the pool process")
    killed_at = time.monotonic()
    os.kill(pool.pid, signal.SIGKILL)

    experiment = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=240, what="the job")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["attempt"] == 2
    events = alice_api.get(url + "events/").json()
    logs = [e["message"] for e in events if e["kind"] == "log"]
    notes = [e.get("note", "") for e in events if e["kind"] == "status" and e["status"] == "running"]
    assert notes[-1].startswith("attempt 2 of 3, resuming from its last checkpoint")
    assert any("queued again for attempt 2 of 3" in line for line in logs) or len(notes) == 2, logs
    assert any("resum" in line.lower() for line in logs), logs  # the fine-tune went on from its checkpoint
    assert time.monotonic() - killed_at < 240
