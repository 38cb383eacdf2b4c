"""A real S3-compatible object store for the tests: moto's server as a process of its own on a free port, with a
bucket. `object_store` starts it (once per test module); `s3_media` points this test's default storage at it.

A test module that uses them names them as its own:
`object_store, s3_media = objectstore.object_store, objectstore.s3_media`.
"""
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests import processes
from tests.waiting import wait_until
from webapp import storage_config

BUCKET = "slimforge-test"
KEY_ID = SECRET = "testing"  # moto takes any credentials; these prove they are passed, not that they are checked


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    bucket: str
    log: Path

    def env(self, prefix: str = "") -> dict[str, str]:
        """The environment a Slimforge process needs to keep its files here (and nothing on a shared disk)."""
        return {"SLIMFORGE_STORAGE": "s3", "SLIMFORGE_S3_BUCKET": self.bucket,
                "SLIMFORGE_S3_ENDPOINT_URL": self.endpoint, "SLIMFORGE_S3_REGION": "us-east-1",
                "SLIMFORGE_S3_ACCESS_KEY_ID": KEY_ID,
                "SLIMFORGE_S3_SECRET_ACCESS_KEY": SECRET, "SLIMFORGE_S3_PREFIX": prefix}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET)

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(entry["Key"] for entry in listed.get("Contents", []))

    def downloads_of(self, key: str) -> int:
        """How many times the server answered a GET of `key` (its request log: one line per request)."""
        line = re.compile(rf'"GET /{re.escape(self.bucket)}/{re.escape(key)} HTTP/[0-9.]+" 2\d\d')
        return len(line.findall(self.log.read_text(errors="replace")))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def object_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("object-store")
    port = processes.free_port()
    server = processes.start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                             folder / "moto.log")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until(lambda: server.poll() is not None or _answers(endpoint), timeout=60, what="the moto server")
        assert server.poll() is None, (folder / "moto.log").read_text()[-3000:]
        store = ObjectStore(endpoint=endpoint, bucket=BUCKET, log=folder / "moto.log")
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        processes.stop(server)


@pytest.fixture
def s3_media(object_store, monkeypatch, settings, request):
    """This test's default storage is the object store, under a folder of the bucket of its own; the environment
    says so too, so processes the test starts inherit it. Yields that folder's name."""
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    for name, value in object_store.env(prefix).items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "default": storage_config.default_storage()}
    yield prefix
