"""POST/GET /api/experiments/, events and artifact downloads: validation first, owners only."""
import pytest

from tests.factories import experiment_with_artifact, ready_model
from webapp import services
from webapp.models import Experiment, UploadedModel

pytestmark = pytest.mark.django_db


def _post(api, body):
    return api.post("/api/experiments/", body, format="json")


def test_config_defaults_apply_and_the_experiment_is_queued(alice, alice_api, django_capture_on_commit_callbacks):
    model = ready_model(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _post(alice_api, {"model": model.pk, "recipe": "quantize", "config": {}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["config"]["variant"] == "dynamic_int8"
    assert len(callbacks) == 1  # the task is enqueued only when the row is committed


@pytest.mark.parametrize("config, field", [
    ({"variant": "int3"}, "config.variant"),
    ({"per_channel": "yes"}, "config.per_channel"),
    ({"bogus": 1}, "config.bogus"),
])
def test_an_invalid_config_is_a_400_naming_the_field(alice, alice_api, config, field):
    response = _post(alice_api, {"model": ready_model(alice).pk, "recipe": "quantize", "config": config})
    assert response.status_code == 400 and field in response.json(), response.json()
    assert Experiment.objects.count() == 0


def test_an_unknown_recipe_is_a_400(alice, alice_api):
    response = _post(alice_api, {"model": ready_model(alice).pk, "recipe": "teleport", "config": {}})
    assert response.status_code == 400 and "recipe" in response.json()


def test_a_model_that_is_not_ready_is_refused(alice, alice_api):
    model = ready_model(alice)
    UploadedModel.objects.filter(pk=model.pk).update(status="pending")
    response = _post(alice_api, {"model": model.pk, "recipe": "quantize", "config": {}})
    assert response.status_code == 400 and "model" in response.json()


def test_bob_cannot_use_see_or_download_alices_things(alice, alice_api, bob_api):
    experiment, artifact = experiment_with_artifact(alice)
    assert _post(bob_api, {"model": experiment.model_id, "recipe": "quantize", "config": {}}).status_code == 404
    assert bob_api.get(f"/api/experiments/{experiment.pk}/").status_code == 404
    assert bob_api.get(f"/api/experiments/{experiment.pk}/events/").status_code == 404
    download = f"/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/"
    assert bob_api.get(download).status_code == 404
    assert bob_api.get("/api/experiments/").json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert [e["id"] for e in alice_api.get("/api/experiments/").json()["results"]] == [experiment.pk]
    mine = alice_api.get(download)
    assert mine.status_code == 200 and b"".join(mine.streaming_content) == b"{}"


def test_experiment_detail_lists_artifacts_with_sha256_and_url(alice, alice_api):
    experiment, artifact = experiment_with_artifact(alice)
    body = alice_api.get(f"/api/experiments/{experiment.pk}/").json()
    assert body["artifacts"] == [{"id": artifact.pk, "name": "report.json", "size_bytes": 2, "sha256": "1" * 64,
                                  "url": f"http://testserver/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/"}]


def test_events_after_a_seq_come_in_order(alice, alice_api):
    experiment, _ = experiment_with_artifact(alice)
    services.events_record(experiment_id=experiment.pk, records=[{"kind": "log", "message": str(i)} for i in range(5)])
    services.events_record(experiment_id=experiment.pk, records=[{"kind": "progress", "done": 3, "total": 4}])
    events = alice_api.get(f"/api/experiments/{experiment.pk}/events/?after=2").json()
    assert [e["seq"] for e in events] == [3, 4, 5, 6]
    assert events[-1]["kind"] == "progress" and events[-1]["done"] == 3 and isinstance(events[-1]["t"], float)
    assert alice_api.get(f"/api/experiments/{experiment.pk}/events/?after=x").status_code == 400
    assert Experiment.objects.get(pk=experiment.pk).progress == 0.75


def _ready_dataset(owner, sample_shape):
    from webapp.models import Dataset

    return Dataset.objects.create(owner=owner, name="d", kind="digits", status="ready",
                                  info={"samples": 10, "sample_shape": sample_shape, "has_labels": True})


def test_a_dataset_that_does_not_fit_the_model_is_refused_before_queueing(alice, alice_api):
    model = ready_model(alice)  # takes [1, 64]
    images = _ready_dataset(alice, [3, 32, 32])
    response = _post(alice_api, {"model": model.pk, "recipe": "quantize", "dataset": images.pk})
    assert response.status_code == 400 and "does not fit" in " ".join(response.json()["dataset"])
    digits = _ready_dataset(alice, [1, 8, 8])  # 64 values: flattened to fit
    assert _post(alice_api, {"model": model.pk, "recipe": "quantize", "dataset": digits.pk}).status_code == 201


def test_bob_cannot_use_alices_dataset(alice, bob, bob_api):
    dataset = _ready_dataset(alice, [1, 8, 8])
    response = _post(bob_api, {"model": ready_model(bob).pk, "recipe": "quantize", "dataset": dataset.pk})
    assert response.status_code == 404


def test_a_variant_that_does_not_apply_is_refused_with_its_reason(alice, alice_api):
    model = ready_model(alice)
    model.info["recipes"]["prune"] = {"applicable": True, "reason": "", "variants": {
        "unstructured": {"applicable": True, "reason": ""},
        "structured": {"applicable": False, "reason": "structured pruning needs a built-in architecture"}}}
    model.save()
    dataset = _ready_dataset(alice, [1, 8, 8])
    response = _post(alice_api, {"model": model.pk, "recipe": "prune", "dataset": dataset.pk,
                                 "config": {"method": "structured"}})
    assert response.status_code == 400
    assert "built-in architecture" in " ".join(response.json()["config.method"])
    without_dataset = _post(alice_api, {"model": model.pk, "recipe": "prune", "config": {"method": "unstructured"}})
    assert without_dataset.status_code == 400 and "dataset" in without_dataset.json()
    unlabelled = _ready_dataset(alice, [1, 8, 8])
    unlabelled.info["has_labels"] = False
    unlabelled.save()
    response = _post(alice_api, {"model": model.pk, "recipe": "prune", "dataset": unlabelled.pk,
                                 "config": {"method": "unstructured"}})
    assert response.status_code == 400 and "no labels" in " ".join(response.json()["dataset"])
    fine = _post(alice_api, {"model": model.pk, "recipe": "prune", "dataset": dataset.pk,
                             "config": {"method": "unstructured"}})
    assert fine.status_code == 201, fine.json()
