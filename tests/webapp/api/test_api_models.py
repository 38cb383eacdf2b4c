"""POST/GET /api/models/: upload checks that never deserialize, and Bob never sees Alice's models."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.modelfiles import EXAMPLE_SHAPE
from webapp.models import UploadedModel

pytestmark = pytest.mark.django_db


def _media_files(settings):
    root = settings.MEDIA_ROOT / "models"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_upload_creates_a_pending_model_under_a_server_made_name(alice_api, torchscript_upload, settings):
    torchscript_upload.name = "../../etc/evil name.pt"
    response = alice_api.post("/api/models/", {"file": torchscript_upload, "name": "mlp",
                                               "input_shape": EXAMPLE_SHAPE}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["name"] == "mlp" and body["input_shape"] == [1, 64]
    model = UploadedModel.objects.get(pk=body["id"])
    assert model.file.name.startswith("models/") and "evil" not in model.file.name
    assert len(model.sha256) == 64 and model.size_bytes == torchscript_upload.size


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "looks like a PNG image"),
    (b"\x80\x04\x95" + b"\0" * 50, "looks like a Python pickle"),
    (b"just some text that is no model", "Not a model file"),
])
def test_a_file_that_is_no_model_archive_is_refused_and_nothing_is_kept(alice_api, content, message, settings):
    upload = SimpleUploadedFile("picture.pt", content)
    response = alice_api.post("/api/models/", {"file": upload, "name": "x", "input_shape": "1,3"},
                              format="multipart")
    assert response.status_code == 400
    assert message in " ".join(response.json()["file"])
    assert UploadedModel.objects.count() == 0 and _media_files(settings) == []


def test_a_truncated_archive_is_refused(alice_api, torchscript_bytes, settings):
    upload = SimpleUploadedFile("half.pt", torchscript_bytes[: len(torchscript_bytes) // 2])
    response = alice_api.post("/api/models/", {"file": upload, "name": "x", "input_shape": "1,64"},
                              format="multipart")
    assert response.status_code == 400 and "zip" in " ".join(response.json()["file"])
    assert UploadedModel.objects.count() == 0 and _media_files(settings) == []


@pytest.mark.parametrize("shape", ["", "abc", "1,-3", "1,,3", "0,4"])
def test_a_bad_input_shape_is_a_400_naming_the_field(alice_api, torchscript_upload, shape, settings):
    response = alice_api.post("/api/models/", {"file": torchscript_upload, "name": "m", "input_shape": shape},
                              format="multipart")
    assert response.status_code == 400 and "input_shape" in response.json()
    assert UploadedModel.objects.count() == 0 and _media_files(settings) == []


def test_missing_file_and_name_are_named(alice_api, torchscript_upload):
    response = alice_api.post("/api/models/", {"input_shape": "1,64"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()
    response = alice_api.post("/api/models/", {"file": torchscript_upload, "input_shape": "1,64"},
                              format="multipart")
    assert response.status_code == 400 and "name" in response.json()


def test_anonymous_calls_are_refused(client):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/models/").status_code in (401, 403)
    assert APIClient().post("/api/models/", {}).status_code in (401, 403)


def test_bob_must_not_see_alices_model(alice, alice_api, bob_api, torchscript_upload):
    created = alice_api.post("/api/models/", {"file": torchscript_upload, "name": "alice-mlp",
                                              "input_shape": EXAMPLE_SHAPE}, format="multipart").json()
    assert bob_api.get(f"/api/models/{created['id']}/").status_code == 404
    assert bob_api.get("/api/models/").json() == []
    assert [m["id"] for m in alice_api.get("/api/models/").json()] == [created["id"]]
    assert alice_api.get(f"/api/models/{created['id']}/").json()["name"] == "alice-mlp"



def test_a_safetensors_state_dict_needs_an_architecture(alice_api, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 2)}, str(tmp_path / "w.safetensors"))
    upload = SimpleUploadedFile("w.safetensors", (tmp_path / "w.safetensors").read_bytes())
    response = alice_api.post("/api/models/", {"file": upload, "name": "w"}, format="multipart")
    assert response.status_code == 400 and "architecture" in response.json()


def test_an_architecture_gives_the_default_input_shape_and_bad_settings_are_named(alice_api, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 2)}, str(tmp_path / "w.safetensors"))
    content = (tmp_path / "w.safetensors").read_bytes()
    response = alice_api.post("/api/models/", {"file": SimpleUploadedFile("w.safetensors", content), "name": "r",
                                               "architecture": "resnet",
                                               "architecture_config": '{"layers": "2,2,2", "num_classes": 10}'},
                              format="multipart")
    assert response.status_code == 400 and "architecture_config.layers" in response.json(), response.json()
    response = alice_api.post("/api/models/", {"file": SimpleUploadedFile("w.safetensors", content), "name": "r",
                                               "architecture": "small_cnn", "architecture_config": "{}"},
                              format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["input_shape"] == [1, 1, 8, 8] and body["architecture"]["name"] == "small_cnn"
