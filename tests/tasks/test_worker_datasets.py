"""Datasets imported by a real worker in the sandbox, and used by an experiment."""
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _settled(api, url):
    body = api.get(url).json()
    return None if body["status"] == "pending" else body


def test_digits_import_with_previews(celery_worker, alice_api):
    created = alice_api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created['id']}/"), timeout=90,
                         what="the digits import")
    assert dataset["status"] == "ready", dataset["error"]
    assert dataset["info"]["samples"] == 1797 and dataset["info"]["num_classes"] == 10
    assert dataset["info"]["sample_shape"] == [1, 8, 8]
    assert dataset["previews"]
    preview = alice_api.get(dataset["previews"][0])
    assert preview.status_code == 200 and b"".join(preview.streaming_content).startswith(b"\x89PNG")


def test_a_zip_slip_archive_is_refused_and_its_file_removed(celery_worker, alice_api):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../evil/1.png", b"not really")
    upload = SimpleUploadedFile("images.zip", archive.getvalue())
    created = alice_api.post("/api/datasets/", {"name": "evil", "kind": "images", "file": upload},
                             format="multipart").json()
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created['id']}/"), timeout=90,
                         what="the import")
    assert dataset["status"] == "failed" and ".." in dataset["error"], dataset["error"]
