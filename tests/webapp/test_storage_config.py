"""Where files live, read from the environment: the media folder by default, an S3-compatible store when asked; a
missing or contradictory setting stops the start with a message that names the variable."""
import re

import pytest

from webapp import storage_config
from webapp.envconf import ImproperEnvironment

S3 = {"SLIMFORGE_STORAGE": "s3", "SLIMFORGE_S3_BUCKET": "slimforge-files"}


@pytest.fixture
def environ(monkeypatch):
    for name in ("SLIMFORGE_STORAGE", "SLIMFORGE_WORKER_CACHE_DIR", "SLIMFORGE_WORKER_CACHE_MB",
                 *storage_config.S3_VARIABLES):
        monkeypatch.delenv(name, raising=False)

    def set_all(values: dict) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_all


def test_the_default_is_the_local_media_folder_and_no_worker_cache(environ):
    assert storage_config.default_storage() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert storage_config.worker_cache_bytes() == 0


def test_s3_keeps_objects_private_unsigned_and_never_overwritten(environ):
    environ({**S3, "SLIMFORGE_S3_ENDPOINT_URL": "https://minio.example.org:9000/", "SLIMFORGE_S3_REGION": "eu-west-1",
             "SLIMFORGE_S3_ACCESS_KEY_ID": "key", "SLIMFORGE_S3_SECRET_ACCESS_KEY": "secret",
             "SLIMFORGE_S3_PREFIX": "/slimforge/prod/"})
    storage = storage_config.default_storage()
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"] == {
        "bucket_name": "slimforge-files", "location": "slimforge/prod", "addressing_style": "path",
        "signature_version": "s3v4", "file_overwrite": False, "default_acl": None, "querystring_auth": False,
        "max_memory_size": storage_config.SPOOL_IN_MEMORY_BYTES, "endpoint_url": "https://minio.example.org:9000",
        "region_name": "eu-west-1", "access_key": "key", "secret_key": "secret"}
    assert storage_config.worker_cache_bytes() == 10 * 1024 * 1024 * 1024


def test_without_keys_or_endpoint_boto_finds_credentials_and_addressing_itself(environ):
    environ(S3)
    options = storage_config.default_storage()["OPTIONS"]
    assert "access_key" not in options and "endpoint_url" not in options and options["addressing_style"] == "auto"


@pytest.mark.parametrize(("values", "message"), [
    ({"SLIMFORGE_STORAGE": "nfs"}, "SLIMFORGE_STORAGE must be 'filesystem' or 's3'; got 'nfs'"),
    ({"SLIMFORGE_STORAGE": "s3"}, "SLIMFORGE_S3_BUCKET is not set"),
    ({**S3, "SLIMFORGE_S3_BUCKET": "Files_Of_Mine"}, "SLIMFORGE_S3_BUCKET must be a bucket name"),
    ({**S3, "SLIMFORGE_S3_ACCESS_KEY_ID": "key"},
     "SLIMFORGE_S3_ACCESS_KEY_ID is set but SLIMFORGE_S3_SECRET_ACCESS_KEY is not"),
    ({**S3, "SLIMFORGE_S3_SECRET_ACCESS_KEY": "secret"},
     "SLIMFORGE_S3_SECRET_ACCESS_KEY is set but SLIMFORGE_S3_ACCESS_KEY_ID is not"),
    ({**S3, "SLIMFORGE_S3_ENDPOINT_URL": "minio:9000"}, "SLIMFORGE_S3_ENDPOINT_URL must be the object store's"),
    ({**S3, "SLIMFORGE_S3_PREFIX": "a/../b"}, "SLIMFORGE_S3_PREFIX must be a folder name"),
    ({**S3, "SLIMFORGE_S3_REGION": "eu west"}, "SLIMFORGE_S3_REGION must be a region name"),
    ({**S3, "SLIMFORGE_S3_ADDRESSING_STYLE": "dns"}, "SLIMFORGE_S3_ADDRESSING_STYLE must be"),
    # Object-store settings without SLIMFORGE_STORAGE=s3 would be silently ignored: files would stay on this disk.
    ({"SLIMFORGE_S3_BUCKET": "slimforge-files"}, "SLIMFORGE_S3_BUCKET is set, but SLIMFORGE_STORAGE is 'filesystem'"),
    ({"SLIMFORGE_STORAGE": "filesystem", "SLIMFORGE_S3_ENDPOINT_URL": "http://127.0.0.1:9000"},
     "SLIMFORGE_S3_ENDPOINT_URL is set, but SLIMFORGE_STORAGE is 'filesystem'"),
])
def test_a_missing_or_contradictory_setting_is_an_error_naming_it(environ, values, message):
    environ(values)
    with pytest.raises(ImproperEnvironment, match=re.escape(message)):
        storage_config.default_storage()


def test_the_worker_cache_folder_and_size(environ, tmp_path):
    assert storage_config.worker_cache_dir(tmp_path) == tmp_path / "worker-cache"
    environ({**S3, "SLIMFORGE_WORKER_CACHE_DIR": str(tmp_path / "cache"), "SLIMFORGE_WORKER_CACHE_MB": "0"})
    assert storage_config.worker_cache_dir(tmp_path / "var") == tmp_path / "cache"
    assert storage_config.worker_cache_bytes() == 0  # turned off
    environ({"SLIMFORGE_WORKER_CACHE_DIR": "cache"})
    with pytest.raises(ImproperEnvironment, match="SLIMFORGE_WORKER_CACHE_DIR must be an absolute path"):
        storage_config.worker_cache_dir(tmp_path)
    environ({"SLIMFORGE_WORKER_CACHE_MB": "-1"})
    with pytest.raises(ImproperEnvironment, match="SLIMFORGE_WORKER_CACHE_MB must be between"):
        storage_config.worker_cache_bytes()
