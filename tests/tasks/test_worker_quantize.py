"""The whole job on a real Celery worker: inspect in a sandbox, quantize, stream events, store artifacts."""
import io
import json

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.modelfiles import EXAMPLE_SHAPE, linear_export_bytes, linear_model
from tests.waiting import wait_until
from webapp.models import UploadedModel

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(api, content: bytes, shape: str = EXAMPLE_SHAPE) -> dict:
    response = api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", content), "name": "m",
                                         "input_shape": shape}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def _settled(api, url: str, pending: tuple) -> dict | None:
    body = api.get(url).json()
    return None if body["status"] in pending else body


def test_upload_inspect_quantize_download(celery_worker, alice_api, torchscript_bytes):
    created = _upload(alice_api, torchscript_bytes)
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{created['id']}/", ("pending",)),
                       timeout=90, what="the inspection")
    assert model["status"] == "ready", model["error"]
    assert model["params"] == sum(p.numel() for p in linear_model().parameters())
    assert model["info"]["output_shape"] == [1, 10] and model["info"]["latency_ms_p50"] > 0

    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize", "config": {}},
                              format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180,
                            what="the quantize job")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert experiment["progress"] == 1.0

    events = alice_api.get(url + "events/").json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no gap, no duplicate
    assert {e["kind"] for e in events} >= {"stage", "progress", "status"}
    assert events[-1] == {**events[-1], "kind": "status", "status": "succeeded"}

    artifacts = {a["name"]: a for a in experiment["artifacts"]}
    assert set(artifacts) == {"model.pt", "report.json"}
    quantized = torch.jit.load(io.BytesIO(_download(alice_api, artifacts["model.pt"]["url"])))
    report = json.loads(_download(alice_api, artifacts["report.json"]["url"]))
    assert artifacts["model.pt"]["size_bytes"] < 0.5 * len(torchscript_bytes)
    assert report["after"]["size_bytes"] == artifacts["model.pt"]["size_bytes"]
    x = torch.randn(8, 64)
    with torch.inference_mode():
        expected = linear_model()(x)
        assert torch.allclose(quantized(x), expected, atol=0.05 * expected.abs().max().item())


def _download(api, url: str) -> bytes:
    response = api.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_wrong_input_shape_fails_inspection_with_a_clear_message(celery_worker, alice_api, torchscript_bytes,
                                                                   settings):
    created = _upload(alice_api, torchscript_bytes, shape="1,3,32,32")
    stored = settings.MEDIA_ROOT / UploadedModel.objects.get(pk=created["id"]).file.name
    assert stored.exists()
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{created['id']}/", ("pending",)),
                       timeout=90, what="the inspection")
    assert model["status"] == "failed"
    assert "[1, 3, 32, 32]" in model["error"] or "1,3,32,32" in model["error"], model["error"]
    assert not stored.exists()  # the unusable file is gone; the record keeps the reason


def test_a_zip_that_is_not_a_model_fails_inspection(celery_worker, alice_api, settings):
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("notes.txt", "hello")
    created = _upload(alice_api, archive.getvalue())
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{created['id']}/", ("pending",)),
                       timeout=90, what="the inspection")
    assert model["status"] == "failed" and "archive" in model["error"].lower(), model["error"]


def test_a_pt2_upload_comes_back_as_a_smaller_pt2(celery_worker, alice_api):
    original = linear_export_bytes()
    created = _upload(alice_api, original)
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{created['id']}/", ("pending",)),
                       timeout=90, what="the inspection")
    assert model["status"] == "ready" and model["format"] == "export", model["error"]
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize", "config": {}},
                              format="json")
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180,
                            what="the quantize job")
    assert experiment["status"] == "succeeded", experiment["error"]
    artifact = next(a for a in experiment["artifacts"] if a["name"] == "model.pt2")
    content = _download(alice_api, artifact["url"])
    assert len(content) < 0.5 * len(original)
    quantized = torch.export.load(io.BytesIO(content)).module()
    x = torch.randn(1, 64)
    with torch.inference_mode():
        expected = linear_model()(x)
        assert torch.allclose(quantized(x), expected, atol=0.05 * expected.abs().max().item())
