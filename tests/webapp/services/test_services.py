"""Services: atomic claims, contiguous event seqs, and no orphan file when a write fails."""
import pytest

from tests.factories import ready_model
from webapp import services
from webapp.models import Event, Experiment, UploadedModel

pytestmark = pytest.mark.django_db


def _experiment(owner):
    return Experiment.objects.create(owner=owner, model=ready_model(owner), recipe="quantize")


def test_only_the_first_delivery_claims_an_experiment(alice):
    experiment = _experiment(alice)
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w1") == 1
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w2") == 0
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.worker == "w1"
    assert list(Event.objects.filter(experiment=experiment).values_list("record__status", flat=True)) == ["running"]


def test_seqs_are_contiguous_per_experiment_across_batches(alice):
    first, second = _experiment(alice), _experiment(alice)
    services.events_record(experiment_id=first.pk, records=[{"kind": "log", "message": "a"}] * 3)
    services.events_record(experiment_id=second.pk, records=[{"kind": "log", "message": "b"}])
    services.events_record(experiment_id=first.pk, records=[{"kind": "stage", "name": "quantize"}])
    assert list(first.events.values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert list(second.events.values_list("seq", flat=True)) == [1]
    first.refresh_from_db()
    assert first.last_seq == 4 and first.stage == "quantize"


def test_finishing_records_a_status_event_and_full_progress(alice):
    experiment = _experiment(alice)
    services.experiment_finish(experiment_id=experiment.pk, status="succeeded", summary={"after": {}})
    experiment.refresh_from_db()
    assert experiment.status == "succeeded" and experiment.progress == 1.0 and experiment.finished_at
    assert experiment.events.last().record["status"] == "succeeded"


def test_a_failed_row_write_leaves_no_file(alice, torchscript_upload, settings, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(UploadedModel, "save", broken_save)
    with pytest.raises(RuntimeError):
        services.model_create(owner=alice, upload=torchscript_upload, name="m", input_shape="1,64")
    assert not list((settings.MEDIA_ROOT / "models").glob("*"))


def test_a_failed_inspection_removes_the_file_and_keeps_the_reason(alice):
    model = ready_model(alice)
    path = model.file.path
    services.model_inspection_failed(model_id=model.pk, error="not a model")
    model.refresh_from_db()
    assert model.status == "failed" and model.error == "not a model" and not model.file
    import os

    assert not os.path.exists(path)
