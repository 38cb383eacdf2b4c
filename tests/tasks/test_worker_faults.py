"""Faults survived, with real processes: the worker's pool process, or a whole worker, killed with SIGKILL in the
middle of a fine-tune; the job is started again (attempt 2 of 3), resumes from its checkpoint and succeeds."""
import os
import signal
import time

import psutil
import pytest

from tasks.celery import RUN_EXPERIMENT, app
from tests import processes
from tests.tasks.worker_jobs import model_and_digits, settled, submit_prune
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def _pool_process_running_the_job(worker) -> psutil.Process | None:
    """The worker's pool process whose descendants include the job's sandbox."""
    for pool in psutil.Process(worker.pid).children():
        if any("optimizers.job_child" in p.cmdline() for p in pool.children(recursive=True)):
            return pool
    return None


def _checkpointed(api, url) -> bool:
    """An epoch has ended, so a checkpoint exists to resume from."""
    return any(e["kind"] == "log" and "fine-tune: epoch 2 of" in e["message"] for e in api.get(url + "events/").json())


def test_a_pool_process_killed_mid_job_is_survived(celery_worker, alice_api, tmp_path):
    model, dataset = model_and_digits(alice_api, tmp_path)
    url = submit_prune(alice_api, model, dataset, epochs=40, early_stopping_patience=0)

    wait_until(lambda: _checkpointed(alice_api, url), timeout=180, what="the fine-tune's first checkpoint")
    pool = wait_until(lambda: _pool_process_running_the_job(celery_worker), timeout=10, what="the pool process")
    killed_at = time.monotonic()
    os.kill(pool.pid, signal.SIGKILL)

    experiment = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=240, what="the job")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["attempt"] == 2
    events = alice_api.get(url + "events/").json()
    logs = [e["message"] for e in events if e["kind"] == "log"]
    notes = [e.get("note", "") for e in events if e["kind"] == "status" and e["status"] == "running"]
    assert notes[-1] == "attempt 2 of 3: the previous worker was lost"
    assert any("queued again for attempt 2 of 3" in line for line in logs) or len(notes) == 2, logs
    assert any("resuming from the checkpoint after epoch" in line for line in logs), logs
    assert time.monotonic() - killed_at < 240


def test_a_whole_worker_killed_mid_job_is_noticed_and_the_job_runs_elsewhere(celery_worker, alice, alice_api,
                                                                             tmp_path, process_logs):
    """A second worker on a queue of its own takes the job; it is killed with SIGKILL, main process and pool
    together. It stops beating, the session's worker reaps the job and runs it again on the default queue."""
    model, dataset = model_and_digits(alice_api, tmp_path)
    queue = f"{celery_worker.pid}-doomed"
    doomed = processes.start_worker(process_logs / "doomed-worker.log", queue=queue, node=f"{queue}@%h")
    try:
        experiment = Experiment.objects.create(
            owner=alice, model_id=model["id"], dataset_id=dataset["id"], recipe="prune",
            config={"method": "unstructured", "agp_steps": 1, "epochs": 40, "early_stopping_patience": 0})
        app.send_task(RUN_EXPERIMENT, args=[experiment.pk], queue=queue)
        url = f"/api/experiments/{experiment.pk}/"
        wait_until(lambda: alice_api.get(url).json()["worker"].startswith(queue) or None, timeout=60,
                   what="the doomed worker to take the job")
        wait_until(lambda: _checkpointed(alice_api, url), timeout=180, what="the job's first checkpoint")
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker, its pool and the job's sandbox, all at once
        doomed.wait()
    done = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=240, what="the job elsewhere")
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2 and not done["worker"].startswith(queue)
    logs = [e["message"] for e in alice_api.get(url + "events/").json() if e["kind"] == "log"]
    assert any(f"stopped ({queue}@" in line and "queued again for attempt 2 of 3" in line for line in logs), logs
    assert any("resuming from the checkpoint after epoch" in line for line in logs), logs


def test_the_same_task_delivered_twice_runs_once(celery_worker, alice, alice_api, tmp_path, process_logs):
    """Two workers on the same queue take the two deliveries at once: one run, one attempt, one set of artifacts."""
    model, _ = model_and_digits(alice_api, tmp_path)
    second = processes.start_worker(process_logs / "second-worker.log", node=f"second-{celery_worker.pid}@%h")
    try:
        experiment = Experiment.objects.create(owner=alice, model_id=model["id"], recipe="quantize",
                                               config={"variant": "dynamic_int8"})
        for _ in range(2):
            app.send_task(RUN_EXPERIMENT, args=[experiment.pk])
        url = f"/api/experiments/{experiment.pk}/"
        done = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=180, what="the job")
        time.sleep(3)  # had the second delivery run too, it would have started by now
    finally:
        processes.stop(second)
    done = alice_api.get(url).json()
    assert done["status"] == "succeeded" and done["attempt"] == 1, done
    events = alice_api.get(url + "events/").json()
    assert [e["status"] for e in events if e["kind"] == "status"] == ["running", "succeeded"]
    names = [artifact["name"] for artifact in done["artifacts"]]
    assert len(names) == len(set(names)) and "report.json" in names
