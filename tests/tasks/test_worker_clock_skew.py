"""A worker on a machine whose clock runs behind: the times that decide whether it lives come from the database's
clock (webapp.clock), so the other workers neither count it offline nor start its running job again."""
from datetime import timedelta

import pytest

from tasks.celery import RUN_EXPERIMENT, app
from tests import processes
from tests.tasks.worker_jobs import model_and_digits, settled
from tests.waiting import wait_until
from webapp import services
from webapp.models import Experiment, Worker
from webapp.selectors.devices import live_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]
BEHIND_S = 120


def test_a_worker_two_minutes_behind_stays_live_and_its_job_runs_once(celery_worker, alice, alice_api, tmp_path,
                                                                       process_logs):
    model, dataset = model_and_digits(alice_api, tmp_path)
    queue = f"{celery_worker.pid}-behind"
    log = process_logs / "behind-worker.log"
    behind = processes.start_worker(log, queue=queue, node=f"{queue}@%h",
                                    celery=("-m", "tests.skewed_worker", str(BEHIND_S)))
    try:
        assert f"{BEHIND_S} s behind" in log.read_text()
        worker = wait_until(lambda: Worker.objects.filter(name__startswith=f"{queue}@").first(), timeout=30,
                            what="the worker's first heartbeat")
        assert live_workers().filter(pk=worker.pk).exists()

        experiment = Experiment.objects.create(
            owner=alice, model_id=model["id"], dataset_id=dataset["id"], recipe="prune",
            config={"method": "unstructured", "agp_steps": 1, "epochs": 6, "early_stopping_patience": 0})
        app.send_task(RUN_EXPERIMENT, args=[experiment.pk], queue=queue)
        url = f"/api/experiments/{experiment.pk}/"
        wait_until(lambda: alice_api.get(url).json()["status"] != "queued" or None, timeout=60,
                   what="the worker to start the job")
        # The session's worker reaps on every heartbeat; so does this test, with the default staleness.
        assert services.experiments_recover() == []
        done = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=180, what="the job")
    finally:
        processes.stop(behind)
    assert done["status"] == "succeeded" and done["attempt"] == 1, done
    assert done["worker"].startswith(queue)
    events = alice_api.get(url + "events/").json()
    assert [e["status"] for e in events if e["kind"] == "status"] == ["running", "succeeded"]
    assert not [e for e in events if e["kind"] == "log" and "queued again" in e["message"]]
    # Its start and end are both the database's: the run's length is the job's, never the clocks' difference.
    row = Experiment.objects.get(pk=experiment.pk)
    assert timedelta(0) < row.finished_at - row.started_at < timedelta(seconds=BEHIND_S)
