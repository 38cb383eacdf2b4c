"""Distill on a real worker: a state-dict teacher, a thinner copy on the digits, live curves, a student to download."""
import io
import json

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from optimizers.formats.model_io import load_model
from optimizers.formats.statedict import save_safetensors
from optimizers.zoo.models import build_model
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
TEACHER_CONFIG = '{"hidden": [128, 64]}'


def _settled(api, url, pending=("pending",)):
    body = api.get(url).json()
    return None if body["status"] in pending else body


def _download(api, url: str) -> bytes:
    response = api.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _upload_mlp(api, tmp_path, name: str, config: str) -> dict:
    save_safetensors(build_model("mlp", json.loads(config)), tmp_path / f"{name}.safetensors")
    upload = SimpleUploadedFile(name, (tmp_path / f"{name}.safetensors").read_bytes())
    created = api.post("/api/models/", {"file": upload, "name": name, "architecture": "mlp",
                                        "architecture_config": config, "input_shape": "1,64"},
                       format="multipart").json()
    model = wait_until(lambda: _settled(api, f"/api/models/{created['id']}/"), timeout=120, what="inspection")
    assert model["status"] == "ready", model["error"]
    return model


def _digits(api) -> dict:
    dataset = api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    return wait_until(lambda: _settled(api, f"/api/datasets/{dataset['id']}/"), timeout=90, what="digits")


def test_distill_a_thinner_copy_of_a_state_dict_teacher(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    model = _upload_mlp(alice_api, tmp_path, "teacher", TEACHER_CONFIG)
    assert model["info"]["recipes"]["distill"]["variants"]["thinner_copy"]["applicable"], model["info"]["recipes"]
    dataset = _digits(alice_api)

    response = alice_api.post("/api/experiments/", {
        "model": model["id"], "recipe": "distill", "dataset": dataset["id"],
        "config": {"student": "thinner_copy", "student_width": 0.25, "epochs": 2, "seeds": 2}}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=240, what="distill")
    assert experiment["status"] == "succeeded", experiment["error"]

    summary = experiment["summary"]
    distilled = summary["extras"]["distill"]
    assert len(distilled["students"]["accuracies"]) == len(distilled["no_teacher"]["accuracies"]) == 2
    assert distilled["verdict"] in summary["notes"]
    assert summary["architecture"] == distilled["student_architecture"]
    assert summary["after"]["params"] < 0.25 * summary["before"]["params"]  # 64-32-16-10 against 64-128-64-10
    assert summary["after"]["accuracy"] is not None and summary["after"]["agreement_top1"] is not None

    events = alice_api.get(url + "events/").json()
    metric_names = {e["name"] for e in events if e["kind"] == "metric"}
    assert {"student1/val_accuracy", "no_teacher2/val_accuracy", "teacher/val_accuracy"} <= metric_names

    artifacts = {a["name"]: a for a in experiment["artifacts"]}
    (tmp_path / "student.safetensors").write_bytes(_download(alice_api, artifacts["model.safetensors"]["url"]))
    student, _ = load_model(tmp_path / "student.safetensors", architecture=summary["architecture"])
    torchscript = torch.jit.load(io.BytesIO(_download(alice_api, artifacts["model.pt"]["url"])))
    x = torch.rand(4, 64)
    with torch.inference_mode():
        torch.testing.assert_close(torchscript(x), student(x))


def test_distill_into_an_uploaded_student(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    teacher = _upload_mlp(alice_api, tmp_path, "teacher", TEACHER_CONFIG)
    student = _upload_mlp(alice_api, tmp_path, "student", '{"hidden": [12]}')
    response = alice_api.post("/api/experiments/", {
        "model": teacher["id"], "recipe": "distill", "dataset": _digits(alice_api)["id"],
        "config": {"student": "uploaded", "student_model": student["id"], "epochs": 1,
                   "compare_without_teacher": False}}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=240, what="distill")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["summary"]["architecture"]["config"]["hidden"] == [12]
    assert experiment["summary"]["after"]["params"] == student["params"]
