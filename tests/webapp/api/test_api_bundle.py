"""The bundle: one zip with every produced format under names that say what they are, report.json, an offline
report.html with its charts embedded, and a model card; only the owner's, only once there are results."""
import io
import zipfile

import pytest
from django.core.files.base import ContentFile

from tests.factories import ready_model
from webapp import services
from webapp.models import Artifact, Experiment

pytestmark = pytest.mark.django_db

SUMMARY = {"before": {"params": 1000, "size_bytes": 4000, "latency_ms_p50": 0.5, "accuracy": 0.97},
           "after": {"params": 1000, "size_bytes": 1100, "latency_ms_p50": 0.25, "accuracy": 0.96},
           "device": "cpu", "threads": 1, "backend": "eager dynamic int8", "notes": ["LSTM layers kept in float"],
           "versions": {"python": "3.11.7", "torch": "2.13.0"}}


def _finished(owner) -> Experiment:
    model = ready_model(owner, name="Digits MLP/v2")
    experiment = Experiment.objects.create(owner=owner, model=model, recipe="quantize",
                                           config={"variant": "dynamic_int8"})
    services.experiment_claim(experiment_id=experiment.pk, worker="cpu@box")
    for name, data in (("model.pt", b"torchscript-bytes"), ("model.onnx", b"onnx-bytes"), ("report.json", b"{}")):
        artifact = Artifact(experiment=experiment, name=name, size_bytes=len(data), sha256="0" * 64)
        artifact.file.save(name, ContentFile(data))
    services.events_record(experiment_id=experiment.pk, records=[
        {"kind": "resource", "name": "job/cpu_percent", "value": 97.5},
        {"kind": "metric", "name": "fine-tune/train_loss", "step": 1, "value": 0.5}])
    services.experiment_finish(experiment_id=experiment.pk, status="succeeded", summary=SUMMARY, attempt=1)
    return Experiment.objects.get(pk=experiment.pk)


def test_the_bundle_holds_every_file_an_offline_report_and_a_model_card(alice, alice_api):
    experiment = _finished(alice)
    response = alice_api.get(f"/api/experiments/{experiment.pk}/bundle/")
    base = f"digits-mlp-v2-quantize-dynamic-int8-{experiment.pk}"
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{base}.zip"'
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(bundle.namelist()) == sorted(f"{base}/{name}" for name in (
        f"{base}.pt", f"{base}.onnx", "report.json", "report.html", "MODEL_CARD.md"))
    assert bundle.read(f"{base}/{base}.pt") == b"torchscript-bytes"
    page = bundle.read(f"{base}/report.html").decode()
    assert "plotly.js v" in page and "<script src=" not in page  # the library inside: it opens offline
    drawn = page.replace("\\u002f", "/")  # Plotly writes "/" escaped inside its JSON
    assert '"name":"job/cpu_percent"' in drawn and '"name":"fine-tune/train_loss"' in drawn
    assert "<td>file size</td><td>4,000</td><td>1,100</td><td>0.275×</td>" in page
    card = bundle.read(f"{base}/MODEL_CARD.md").decode()
    for expected in ("sha256 " + "0" * 64, '"variant": "dynamic_int8"', "| accuracy | 0.97 | 0.96 |",
                     "- torch 2.13.0", "- worker: cpu@box, attempt 1", "LSTM layers kept in float",
                     "dataset: none (measured on the example input)"):
        assert expected in card, expected


def test_single_downloads_say_what_they_are(alice, alice_api):
    experiment = _finished(alice)
    artifact = experiment.artifacts.get(name="model.pt")
    response = alice_api.get(f"/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/")
    assert response["Content-Disposition"] == \
        f'attachment; filename="digits-mlp-v2-quantize-dynamic-int8-{experiment.pk}.pt"'


def test_only_the_owner_and_only_with_results(alice, alice_api, bob_api):
    experiment = _finished(alice)
    assert bob_api.get(f"/api/experiments/{experiment.pk}/bundle/").status_code == 404
    queued = Experiment.objects.create(owner=alice, model=experiment.model, recipe="quantize")
    refused = alice_api.get(f"/api/experiments/{queued.pk}/bundle/")
    assert refused.status_code == 409 and "its bundle exists once it has succeeded" in refused.json()["detail"]
    lost = experiment.artifacts.get(name="model.onnx")
    lost.file.storage.delete(lost.file.name)
    missing = alice_api.get(f"/api/experiments/{experiment.pk}/bundle/")
    assert missing.status_code == 404 and "missing from storage" in missing.json()["detail"]
