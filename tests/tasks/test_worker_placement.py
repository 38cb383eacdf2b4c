"""Before it claims a job, a worker checks the job's memory estimate against what it has free. Two real workers serve
the cpu queue: one whose operator lets its jobs have 1 MB (SLIMFORGE_WORKER_MEMORY_MB) leaves the job, saying why on
the experiment, and the one with room runs it."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests import processes
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _body(api, url: str) -> dict:
    return api.get(url).json()


def test_a_job_too_big_for_one_worker_waits_for_a_worker_with_room(celery_worker, alice_api, torchscript_bytes,
                                                                   process_logs):
    created = alice_api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", torchscript_bytes), "name": "m",
                                              "input_shape": "1,64"}, format="multipart").json()
    wait_until(lambda: _body(alice_api, f"/api/models/{created['id']}/")["status"] == "ready", timeout=90,
               what="the inspection")
    small = processes.start_worker(process_logs / "small-worker.log", queue="cpu", node="cpu@small",
                                   env={"SLIMFORGE_WORKER_MEMORY_MB": "1"})
    big = None
    try:
        response = alice_api.post("/api/experiments/", {"model": created["id"], "recipe": "quantize",
                                                        "device_shape": "cpu"}, format="json")
        assert response.status_code == 201, response.json()
        url = f"/api/experiments/{response.json()['id']}/"
        waiting = wait_until(lambda: "left it for a bigger device" in (body := _body(alice_api, url))["waiting"]
                             and body, timeout=60, what="the small worker to leave the job")
        assert waiting["status"] == "queued" and waiting["worker"] == "" and waiting["attempt"] == 0
        assert waiting["waiting"].startswith("Worker cpu@small left it for a bigger device: the job needs about ")
        assert "of memory (SLIMFORGE_WORKER_MEMORY_MB) free" in waiting["waiting"]

        big = processes.start_worker(process_logs / "big-worker.log", queue="cpu", node="cpu@big")
        done = wait_until(lambda: (body := _body(alice_api, url))["status"] not in ("queued", "running") and body,
                          timeout=120, what="the job on the worker with room")
        assert done["status"] == "succeeded", done["error"]
        assert done["worker"] == "cpu@big" and done["attempt"] == 1 and done["waiting"] == ""
    finally:
        for worker in (small, big):
            if worker is not None:
                processes.stop(worker)
