"""Chains without a worker: what a submit checks (each error names its step), cancel, resume, delete, and a step's
result registered as a model with its lineage."""
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from tasks.celery import INSPECT_MODEL
from tests.factories import ready_model
from webapp import services
from webapp.models import Artifact, Chain, Dataset, Experiment, OutboxMessage, UploadedModel
from webapp.services import deletion

pytestmark = pytest.mark.django_db
QUANTIZE = {"recipe": "quantize", "config": {"variant": "dynamic_int8"}, "dataset": None}


def _digits(owner) -> Dataset:
    return Dataset.objects.create(owner=owner, name="digits", kind="digits", status="ready",
                                  info={"samples": 10, "sample_shape": [64], "has_labels": True})


def test_each_error_names_its_step(alice, bob):
    model = ready_model(alice)
    prune = {"recipe": "prune", "config": {"epochs": "many"}, "dataset": _digits(alice)}
    with pytest.raises(ValidationError) as caught:
        services.chain_create(owner=alice, model=model, steps=[QUANTIZE, prune])
    assert "steps.1.config.epochs" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.chain_create(owner=alice, model=model, steps=[QUANTIZE, {"recipe": "prune", "config": {}}])
    assert caught.value.message_dict["steps.1.dataset"][0].startswith("Choose a dataset")
    with pytest.raises(ValidationError) as caught:
        services.chain_create(owner=alice, model=model, steps=[{**QUANTIZE, "dataset": _digits(bob)}])
    assert "steps.0.dataset" in caught.value.message_dict
    with pytest.raises(ValidationError):
        services.chain_create(owner=alice, model=model, steps=[])
    with pytest.raises(ValidationError) as caught:
        services.chain_create(owner=alice, model=model, steps=[QUANTIZE], name=["not", "text"])
    assert "name" in caught.value.message_dict
    with pytest.raises(ValidationError):
        services.chain_create(owner=bob, model=model, steps=[QUANTIZE])  # not Bob's model
    assert not Chain.objects.exists() and not Experiment.objects.exists()  # nothing half-made


def test_cancel_then_resume_then_delete(alice, bob):
    chain = services.chain_create(owner=alice, model=ready_model(alice), steps=[QUANTIZE, QUANTIZE], name="two")
    first = chain.experiments.get()
    assert (first.chain_index, first.status) == (0, "queued")
    with pytest.raises(Chain.DoesNotExist):
        services.chain_cancel(user=bob, chain_id=chain.pk)
    with pytest.raises(ValidationError, match="only a failed or cancelled chain can be resumed"):
        services.chain_resume(user=alice, chain_id=chain.pk)

    chain = services.chain_cancel(user=alice, chain_id=chain.pk)
    assert chain.status == "cancelled" and chain.error == "Step 1 (quantize) was cancelled."
    with pytest.raises(ValidationError, match="already cancelled"):
        services.chain_cancel(user=alice, chain_id=chain.pk)

    with pytest.raises(ValidationError) as caught:
        services.chain_resume(user=alice, chain_id=chain.pk, config_changes={"variant": "int3"})
    assert "config.variant" in caught.value.message_dict
    chain = services.chain_resume(user=alice, chain_id=chain.pk, config_changes={"per_channel": False})
    again = chain.experiments.order_by("-pk").first()
    assert chain.status == "running" and again.rerun_of_id == first.pk and again.config["per_channel"] is False

    with pytest.raises(ValidationError, match="chain #.* is running: cancel it first"):
        deletion.chains_delete(user=alice, ids=[chain.pk])
    services.chain_cancel(user=alice, chain_id=chain.pk)
    with pytest.raises(Chain.DoesNotExist):
        deletion.chains_delete(user=bob, ids=[chain.pk])
    assert deletion.chains_delete(user=alice, ids=[chain.pk]) == 1
    assert not Chain.objects.exists() and not Experiment.objects.exists()
    assert UploadedModel.objects.filter(owner=alice).count() == 1  # the model stays


def test_a_succeeded_step_becomes_a_model_with_its_lineage(alice, django_capture_on_commit_callbacks):
    model = ready_model(alice)
    chain = services.chain_create(owner=alice, model=model, steps=[QUANTIZE, QUANTIZE])
    step = chain.experiments.get()
    Experiment.objects.filter(pk=step.pk).update(status="running", attempt=1, summary={
        "format": "torchscript", "primary_format": "torchscript",
        "formats": {"written": {"torchscript": "model.pt"}}})
    artifact = Artifact(experiment=step, name="model.pt", size_bytes=4, sha256="a" * 64)
    artifact.file.save("model.pt", ContentFile(b"PK\x05\x06"))
    with django_capture_on_commit_callbacks(execute=False):
        assert services.experiment_finish(experiment_id=step.pk, status="succeeded", attempt=1)
    made = UploadedModel.objects.get(source_experiment=step)
    assert made.parent_model == model and made.status == "pending" and made.owner == alice
    assert made.name == f"{model.name} → quantize" and made.sha256 == "a" * 64
    assert made.file.read() == b"PK\x05\x06"  # a copy of the artifact, under a name of the server's
    assert OutboxMessage.objects.filter(task=INSPECT_MODEL, object_id=made.pk).exists()  # inspected like an upload

    # The inspection fails: the chain stops there, saying so.
    services.model_inspection_failed(model_id=made.pk, error="not a model")
    chain.refresh_from_db()
    assert chain.status == "failed" and chain.error == "Step 1 (quantize) made a model that could not be loaded: " \
                                                       "not a model"
