"""A three-step chain end to end with a real worker: prune -> distill -> quantize, each step on the model the step
before made (registered with its lineage); then a chain whose step fails, resumed from that step with edits."""
import pytest

from tests.tasks.worker_jobs import model_and_digits
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _ended(api, url):
    body = api.get(url).json()
    return None if body["status"] == "running" else body


def _steps(dataset_id, distill_epochs=1):
    return [
        {"recipe": "prune", "dataset": dataset_id,
         "config": {"method": "unstructured", "agp_steps": 1, "epochs": 1, "target_sparsity": 0.5}},
        {"recipe": "distill", "dataset": dataset_id,
         "config": {"student": "thinner_copy", "epochs": distill_epochs, "compare_without_teacher": False}},
        {"recipe": "quantize", "dataset": None, "config": {"variant": "dynamic_int8"}},
    ]


def test_a_three_step_chain_runs_each_step_on_the_model_before(celery_worker, alice_api, tmp_path):
    model, digits = model_and_digits(alice_api, tmp_path)
    response = alice_api.post("/api/chains/", {"model": model["id"], "name": "slim it",
                                               "steps": _steps(digits["id"])}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/chains/{response.json()['id']}/"
    chain = wait_until(lambda: _ended(alice_api, url), timeout=600, what="the chain")
    assert chain["status"] == "succeeded", chain["error"]

    steps = chain["steps"]
    assert [s["status"] for s in steps] == ["succeeded"] * 3
    # Each step ran on the model the step before made; each result is a model with its lineage.
    assert steps[0]["experiment"]["model"] == model["id"]
    for before, after in zip(steps, steps[1:], strict=False):
        assert after["experiment"]["model"] == before["output_model"]["id"]
    for step in steps:
        made = alice_api.get(f"/api/models/{step['output_model']['id']}/").json()
        assert made["status"] == "ready" and made["source_experiment"] == step["experiment"]["id"]
        assert made["parent_model"] == step["experiment"]["model"]
    experiment = alice_api.get(f"/api/experiments/{steps[1]['experiment']['id']}/").json()
    assert experiment["chain"] == chain["id"] and experiment["chain_index"] == 1
    # The final model against the first: smaller.
    size = next(row for row in chain["first_vs_final"] if row["axis"] == "size")
    assert size["final"] < size["first"] and size["ratio"] < 1


def test_a_failed_step_stops_the_chain_and_it_resumes_from_there(celery_worker, alice_api, bob_api, tmp_path):
    model, digits = model_and_digits(alice_api, tmp_path)
    steps = _steps(digits["id"])
    # The second step cannot start: a built-in student of the wrong input size for this model.
    steps[1]["config"] = {"student": "builtin", "student_architecture": "mlp",
                          "student_config": '{"in_features": 10, "hidden": [8]}', "epochs": 1,
                          "compare_without_teacher": False}
    response = alice_api.post("/api/chains/", {"model": model["id"], "steps": steps}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/chains/{response.json()['id']}/"
    chain = wait_until(lambda: _ended(alice_api, url), timeout=600, what="the chain")
    assert chain["status"] == "failed" and chain["error"].startswith("Step 2 (distill)"), chain
    assert chain["steps"][0]["status"] == "succeeded" and chain["steps"][2]["status"] == "waiting"

    # Bob cannot resume it; Alice resumes from step 2 with other settings, and the chain ends.
    assert bob_api.post(f"/api/chains/{chain['id']}/resume/", {}, format="json").status_code == 404
    assert bob_api.get(url).status_code == 404
    assert alice_api.post(f"/api/chains/{chain['id']}/resume/", {"config": {"epochs": "many"}},
                          format="json").status_code == 400
    resumed = alice_api.post(f"/api/chains/{chain['id']}/resume/", {
        "config": {"student": "thinner_copy", "student_config": "{}"}}, format="json")
    assert resumed.status_code == 200, resumed.json()
    assert resumed.json()["status"] == "running" and resumed.json()["current_index"] == 1
    chain = wait_until(lambda: _ended(alice_api, url), timeout=600, what="the resumed chain")
    assert chain["status"] == "succeeded", chain["error"]
    assert chain["steps"][1]["config"]["student"] == "thinner_copy"
    # The first step was not run again.
    assert chain["steps"][0]["runs"] == 1
