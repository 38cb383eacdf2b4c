"""POST /api/experiments/ for distill with an uploaded student: Bob must not train (or learn of) Alice's models."""
import pytest

from tests.factories import ready_model
from webapp.models import Dataset, Experiment

pytestmark = pytest.mark.django_db


def _dataset(owner) -> Dataset:
    return Dataset.objects.create(owner=owner, name="d", kind="digits", status="ready",
                                  info={"samples": 10, "sample_shape": [1, 8, 8], "has_labels": True})


def _state_dict_model(owner, name="student"):
    model = ready_model(owner, name=name)
    model.format, model.architecture = "safetensors", {"name": "mlp", "config": {"hidden": [16]}}
    model.save()
    return model


def _distill(api, teacher, dataset, student_id):
    return api.post("/api/experiments/", {"model": teacher.pk, "recipe": "distill", "dataset": dataset.pk,
                                          "config": {"student": "uploaded", "student_model": student_id}},
                    format="json")


def test_alice_trains_her_own_state_dict_as_the_student(alice, alice_api):
    student = _state_dict_model(alice)
    response = _distill(alice_api, ready_model(alice, name="teacher"), _dataset(alice), student.pk)
    assert response.status_code == 201, response.json()
    assert response.json()["config"]["student_model"] == student.pk


def test_bob_cannot_name_alices_model_and_learns_nothing_of_it(alice, bob, bob_api):
    alices = _state_dict_model(alice)
    teacher, dataset = ready_model(bob, name="teacher"), _dataset(bob)
    refused = _distill(bob_api, teacher, dataset, alices.pk)
    missing = _distill(bob_api, teacher, dataset, alices.pk + 1000)
    assert refused.status_code == missing.status_code == 400
    assert refused.json()["config.student_model"] == [f"You have no model #{alices.pk}."]
    assert missing.json()["config.student_model"] == [f"You have no model #{alices.pk + 1000}."]
    assert not Experiment.objects.exists()


def test_a_student_that_cannot_be_trained_and_saved_is_refused_before_queueing(alice, alice_api):
    scripted = ready_model(alice, name="scripted")  # TorchScript: frozen code, not a trainable state dict
    response = _distill(alice_api, ready_model(alice, name="teacher"), _dataset(alice), scripted.pk)
    assert response.status_code == 400
    assert "must be a state dict (safetensors) uploaded with its architecture" in \
        response.json()["config.student_model"][0]
    pending = _state_dict_model(alice, name="pending")
    pending.status = "pending"
    pending.save()
    response = _distill(alice_api, ready_model(alice, name="teacher"), _dataset(alice), pending.pk)
    assert response.status_code == 400 and "is pending" in response.json()["config.student_model"][0]
    without_id = alice_api.post("/api/experiments/", {"model": scripted.pk, "recipe": "distill",
                                                      "dataset": _dataset(alice).pk, "config": {"student": "uploaded"}},
                                format="json")
    assert without_id.status_code == 400 and "give its id" in without_id.json()["config.student_model"][0]
    assert not Experiment.objects.exists()


def test_a_builtin_student_that_cannot_fit_the_teacher_is_a_400_before_queueing(alice, alice_api):
    teacher = ready_model(alice, name="teacher")  # takes [1, 64], gives [1, 10]
    response = alice_api.post("/api/experiments/", {"model": teacher.pk, "recipe": "distill",
                                                    "dataset": _dataset(alice).pk,
                                                    "config": {"student_config": '{"num_classes": 2}'}},
                              format="json")
    assert response.status_code == 400
    assert "set num_classes to 10" in response.json()["config.student_config"][0]
    assert not Experiment.objects.exists()


def test_an_unlabelled_dataset_is_enough_for_distill_but_not_for_prune(alice, alice_api):
    teacher, dataset = ready_model(alice, name="teacher"), _dataset(alice)
    dataset.info["has_labels"] = False
    dataset.save()
    distill = alice_api.post("/api/experiments/", {"model": teacher.pk, "recipe": "distill", "dataset": dataset.pk},
                             format="json")
    assert distill.status_code == 201, distill.json()
    prune = alice_api.post("/api/experiments/", {"model": teacher.pk, "recipe": "prune", "dataset": dataset.pk},
                           format="json")
    assert prune.status_code == 400 and "no labels" in " ".join(prune.json()["dataset"])
