"""The web side on an S3-compatible object store (a real moto server process): files go to the bucket and nowhere on
this disk, stay private, are never overwritten, stream back only to their owner, and go with their rows."""
import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from storages.backends.s3 import S3File

from tests.factories import experiment_with_artifact
from webapp.services.deletion import models_delete

pytestmark = pytest.mark.django_db


def test_files_live_in_the_bucket_privately_and_are_never_overwritten(s3_media, object_store, settings):
    first = default_storage.save("models/same.bin", ContentFile(b"first"))
    second = default_storage.save("models/same.bin", ContentFile(b"second"))
    assert first == "models/same.bin" and second != first  # a taken name gets another, never replaces a file
    assert object_store.keys(s3_media) == sorted(f"{s3_media}/{name}" for name in (first, second))
    grants = object_store.client().get_object_acl(Bucket=object_store.bucket, Key=f"{s3_media}/{first}")["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)  # nobody else, no AllUsers
    assert "Signature" not in default_storage.url(first) and "X-Amz" not in default_storage.url(first)
    assert not settings.MEDIA_ROOT.exists()  # nothing on this machine's disk


def test_downloads_stream_from_the_bucket_to_the_owner_only(s3_media, object_store, alice, alice_api,
                                                            bob_api, monkeypatch):
    experiment, artifact = experiment_with_artifact(alice)
    url = f"/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/"
    response = alice_api.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"{}"
    assert bob_api.get(url).status_code == 404

    # A large file is passed on as the bucket sends it, in the response's blocks, never copied whole first
    # (django-storages' S3File copies the whole object to a temporary file the first time its `file` is read).
    large = bytes(range(256)) * (40 * 1024)  # 10 MiB: past the 4 MB such a copy would keep in memory
    artifact.file.save("model.pt", ContentFile(large))
    monkeypatch.setattr(S3File, "file", property(_no_whole_copy))
    response = alice_api.get(url)
    assert response.status_code == 200 and response["Content-Length"] == str(len(large))
    first = next(iter(response.streaming_content))
    assert len(first) == response.block_size < len(large)
    assert first + b"".join(response.streaming_content) == large
    experiment.summary = {"before": {}, "after": {}}
    experiment.save()
    bundle = alice_api.get(f"/api/experiments/{experiment.pk}/bundle/")
    names = zipfile.ZipFile(io.BytesIO(b"".join(bundle.streaming_content))).namelist()
    assert bundle.status_code == 200 and any(name.endswith("/report.json") for name in names)

    object_store.client().delete_object(Bucket=object_store.bucket, Key=f"{s3_media}/{artifact.file.name}")
    lost = alice_api.get(url)
    assert lost.status_code == 404 and "missing from storage" in lost.json()["detail"]


def test_deleting_a_model_deletes_its_objects_after_the_commit(s3_media, object_store, alice,
                                                               django_capture_on_commit_callbacks):
    experiment, artifact = experiment_with_artifact(alice)
    assert len(object_store.keys(s3_media)) == 2  # the model's file and the artifact
    with django_capture_on_commit_callbacks(execute=True):
        models_delete(user=alice, ids=[experiment.model_id])
    assert object_store.keys(s3_media) == []


def _no_whole_copy(s3_file):
    raise AssertionError(f"{s3_file.name} was copied whole before it was sent")
