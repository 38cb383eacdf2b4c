"""Per-recipe time limits with a real worker: SLIMFORGE_RUN_SECONDS_PRUNE=12 gives prune jobs a soft limit of 11 s;
a fine-tune that would run far longer is asked to stop at its next step then, and fails saying why."""
import pytest

from tasks.celery import RUN_EXPERIMENT, app
from tests import processes
from tests.tasks.worker_jobs import model_and_digits, settled
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def test_a_job_past_its_recipes_soft_limit_stops_at_a_step_and_fails_saying_so(celery_worker, alice, alice_api,
                                                                                tmp_path, process_logs):
    model, dataset = model_and_digits(alice_api, tmp_path)
    queue = f"{celery_worker.pid}-short"
    worker = processes.start_worker(process_logs / "short-worker.log", queue=queue,
                                    env={"SLIMFORGE_RUN_SECONDS_PRUNE": "12"})
    try:
        experiment = Experiment.objects.create(
            owner=alice, model_id=model["id"], dataset_id=dataset["id"], recipe="prune",
            config={"method": "unstructured", "agp_steps": 1, "epochs": 500, "early_stopping_patience": 0})
        app.send_task(RUN_EXPERIMENT, args=[experiment.pk], queue=queue)
        url = f"/api/experiments/{experiment.pk}/"
        done = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=120, what="the job")
    finally:
        processes.stop(worker)
    assert done["status"] == "failed"
    assert done["error"].startswith("The job ran past its soft time limit of 11 s and stopped at a step boundary")
    assert "SLIMFORGE_RUN_SECONDS_PRUNE" in done["error"]
