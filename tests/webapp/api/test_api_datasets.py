"""POST/GET /api/datasets/: checked before queueing, stored under server-made names, owners only."""
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.models import Dataset

pytestmark = pytest.mark.django_db


def _npz_upload() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.default_rng(0).random((20, 4), dtype=np.float32), y=np.arange(20) % 2)
    return SimpleUploadedFile("../../x.npz", buffer.getvalue())


def test_an_npz_upload_is_queued_for_import(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_api.post("/api/datasets/", {"name": "pairs", "kind": "npz", "file": _npz_upload()},
                                  format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["kind"] == "npz" and len(body["sha256"]) == 64
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.source.name.startswith("datasets/sources/") and "x.npz" not in dataset.source.name
    assert len(callbacks) == 1


def test_the_built_in_digits_need_no_file(alice_api):
    response = alice_api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json")
    assert response.status_code == 201 and response.json()["kind"] == "digits"


@pytest.mark.parametrize("body, field", [
    ({"name": "", "kind": "digits"}, "name"),
    ({"name": "d", "kind": "parquet"}, "kind"),
    ({"name": "d", "kind": "csv"}, "file"),
    ({"name": "d", "kind": "digits", "options": {"colour": "red"}}, "options.colour"),
    ({"name": "d", "kind": "images", "options": {"image_size": 100000}}, "options.image_size"),
    ({"name": "d", "kind": "csv", "options": "not json"}, "options"),
])
def test_bad_input_is_a_400_naming_the_field(alice_api, body, field, settings):
    response = alice_api.post("/api/datasets/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert Dataset.objects.count() == 0


def test_bob_must_not_see_alices_dataset(alice_api, bob_api):
    created = alice_api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    assert bob_api.get(f"/api/datasets/{created['id']}/").status_code == 404
    assert bob_api.get("/api/datasets/").json() == []
    assert bob_api.get(f"/api/datasets/{created['id']}/previews/preview_0.png").status_code == 404
    assert alice_api.get(f"/api/datasets/{created['id']}/").status_code == 200
