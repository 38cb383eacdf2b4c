"""Delete models, datasets and experiments with their files; refused, with the reason and nothing deleted, while
queued or running work uses them; one at a time or several at once; other users' ids read as missing."""
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from tests.factories import experiment_with_artifact, ready_model
from webapp.models import Artifact, Dataset, DatasetFile, Experiment, UploadedModel
from webapp.services.deletion import datasets_delete, experiments_delete, models_delete

pytestmark = pytest.mark.django_db(transaction=True)  # files are deleted once the transaction commits


def _finished(owner, **fields) -> tuple[Experiment, Path]:
    experiment, artifact = experiment_with_artifact(owner)
    Experiment.objects.filter(pk=experiment.pk).update(**fields)
    return experiment, Path(artifact.file.path)


def _dataset(owner, status="ready") -> tuple[Dataset, list[Path]]:
    dataset = Dataset.objects.create(owner=owner, name="digits", kind="npz", status=status)
    dataset.source.save("source", ContentFile(b"npz"))
    prepared = DatasetFile(dataset=dataset, name="dataset.npz")
    prepared.file.save("dataset.npz", ContentFile(b"prepared"))
    return dataset, [Path(dataset.source.path), Path(prepared.file.path)]


def test_experiments_go_with_their_artifacts_and_events(alice):
    first, first_file = _finished(alice)
    second, second_file = _finished(alice)
    assert first_file.exists() and second_file.exists()
    assert experiments_delete(user=alice, ids=[first.pk, second.pk]) == 2
    assert not Experiment.objects.exists() and not Artifact.objects.exists()
    assert not first_file.exists() and not second_file.exists()


def test_a_running_experiment_refuses_the_whole_batch(alice):
    finished, path = _finished(alice)
    running, _ = _finished(alice, status="running")
    with pytest.raises(ValidationError, match=rf"Nothing was deleted: experiment #{running.pk} is running: cancel"):
        experiments_delete(user=alice, ids=[finished.pk, running.pk])
    assert Experiment.objects.count() == 2 and path.exists()


def test_a_model_goes_with_its_file_experiments_and_artifacts(alice):
    experiment, artifact_path = _finished(alice)
    model_path = Path(experiment.model.file.path)
    assert models_delete(user=alice, ids=[experiment.model_id]) == 1
    assert not UploadedModel.objects.exists() and not Experiment.objects.exists()
    assert not model_path.exists() and not artifact_path.exists()


def test_a_model_that_queued_work_uses_is_refused(alice):
    experiment, _ = _finished(alice, status="queued")
    student = ready_model(alice, name="student")
    Experiment.objects.create(owner=alice, model=ready_model(alice, name="teacher"), recipe="distill",
                              config={"student": "uploaded", "student_model": student.pk}, status="running")
    with pytest.raises(ValidationError, match=rf"queued experiment #{experiment.pk} uses model #{experiment.model_id}"):
        models_delete(user=alice, ids=[experiment.model_id])
    with pytest.raises(ValidationError, match=rf"running experiment #\d+ uses model #{student.pk}"):
        models_delete(user=alice, ids=[student.pk])
    pending = UploadedModel.objects.create(owner=alice, name="new", sha256="0" * 64, size_bytes=1,
                                           input_shape=[1], status="pending")
    with pytest.raises(ValidationError, match=rf"model #{pending.pk} \(new\) is still being inspected"):
        models_delete(user=alice, ids=[pending.pk])
    assert UploadedModel.objects.count() == 4


def test_a_dataset_goes_with_its_files_and_finished_reports_stay(alice):
    dataset, paths = _dataset(alice)
    experiment, _ = _finished(alice)
    Experiment.objects.filter(pk=experiment.pk).update(dataset=dataset)
    assert datasets_delete(user=alice, ids=[dataset.pk]) == 1
    assert not any(path.exists() for path in paths) and not DatasetFile.objects.exists()
    experiment.refresh_from_db()
    assert experiment.dataset is None and experiment.status == "succeeded"


def test_a_dataset_that_running_work_uses_is_refused(alice):
    dataset, paths = _dataset(alice)
    experiment, _ = _finished(alice, status="running")
    Experiment.objects.filter(pk=experiment.pk).update(dataset=dataset)
    with pytest.raises(ValidationError, match=rf"running experiment #{experiment.pk} uses dataset #{dataset.pk}"):
        datasets_delete(user=alice, ids=[dataset.pk])
    assert all(path.exists() for path in paths)


def test_other_users_ids_read_as_missing_and_nothing_of_theirs_goes(alice, bob):
    experiment, path = _finished(alice)
    mine, _ = _finished(bob)
    with pytest.raises(Experiment.DoesNotExist, match=f"You have no experiment #{experiment.pk}"):
        experiments_delete(user=bob, ids=[mine.pk, experiment.pk])
    assert Experiment.objects.count() == 2 and path.exists()


def test_the_api_one_and_several(alice, alice_api, bob_api):
    first, _ = _finished(alice)
    second, _ = _finished(alice)
    running, _ = _finished(alice, status="running")
    assert bob_api.delete(f"/api/experiments/{first.pk}/").status_code == 404
    assert alice_api.delete(f"/api/experiments/{first.pk}/").status_code == 204
    refused = alice_api.post("/api/experiments/delete/", {"ids": [second.pk, running.pk]}, format="json")
    assert refused.status_code == 409 and f"experiment #{running.pk} is running" in refused.json()["detail"]
    assert alice_api.post("/api/experiments/delete/", {"ids": [second.pk]}, format="json").status_code == 204
    assert alice_api.post("/api/experiments/delete/", {"ids": "3"}, format="json").status_code == 400
    assert alice_api.post("/api/experiments/delete/", {"ids": []}, format="json").status_code == 400
    assert alice_api.delete(f"/api/models/{running.model_id}/").status_code == 409
    assert list(Experiment.objects.values_list("pk", flat=True)) == [running.pk]


def test_the_pages_buttons(alice, client):
    client.force_login(alice)
    experiment, path = _finished(alice)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert f'action="/experiments/{experiment.pk}/delete/"' in page and "data-confirm=" in page
    response = client.post(f"/experiments/{experiment.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/experiments/"
    assert f"Deleted experiment #{experiment.pk}, with its files." in response.content.decode()
    assert not path.exists()
    model = ready_model(alice, name="doomed")
    response = client.post(f"/models/{model.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/models/" and "Deleted model" in response.content.decode()
    dataset, _ = _dataset(alice)
    running, _ = _finished(alice, status="running")
    Experiment.objects.filter(pk=running.pk).update(dataset=dataset)
    response = client.post(f"/datasets/{dataset.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == f"/datasets/{dataset.pk}/"
    assert "Nothing was deleted" in response.content.decode() and Dataset.objects.filter(pk=dataset.pk).exists()
