"""parallelize on a real worker: the plan search streams its points, and the plan and its serving file download."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.modelfiles import EXAMPLE_SHAPE
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _settled(api, url, pending):
    body = api.get(url).json()
    return None if body["status"] in pending else body


def test_plan_search_on_an_uploaded_torchscript_model(celery_worker, alice_api, torchscript_bytes):
    created = alice_api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", torchscript_bytes), "name": "m",
                                              "input_shape": EXAMPLE_SHAPE}, format="multipart").json()
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{created['id']}/", ("pending",)), timeout=90,
                       what="the inspection")
    assert model["info"]["recipes"]["parallelize"]["applicable"], model["info"]["recipes"]
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "parallelize", "config": {
        "device": "cpu", "batch_sizes": [1, 8, 32], "threads": [1, 2], "repeats": 5}}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180, what="the search")
    assert experiment["status"] == "succeeded", experiment["error"]

    found = experiment["summary"]["extras"]["plan_search"]
    assert found["plan"] == max(found["points"], key=lambda point: point["throughput_per_s"])
    assert found["speedup"] >= 1.0
    artifacts = {a["name"]: a for a in experiment["artifacts"]}
    assert {"plan.json", "serve_plan.py", "model.pt"} <= set(artifacts)
    downloaded = alice_api.get(artifacts["plan.json"]["url"])
    assert json.loads(b"".join(downloaded.streaming_content)) == found
    events = alice_api.get(url + "events/").json()
    points = [e for e in events if e["kind"] == "metric" and e["name"] == "plan/throughput_per_s"]
    assert len(points) == len(found["points"])
