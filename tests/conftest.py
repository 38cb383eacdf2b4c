import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests import flush_retry, processes
from tests.browser import browser_page, carol  # noqa: F401  (fixtures)
from tests.modelfiles import linear_torchscript_bytes
from tests.objectstore import object_store, s3_media  # noqa: F401  (fixtures: an S3-compatible server process)

flush_retry.install()


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="alice-secret-pw")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", password="bob-secret-pw")


def _api_client_for(user) -> APIClient:
    client = APIClient()
    _, token = AuthToken.objects.create(user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def alice_api(alice):
    return _api_client_for(alice)


@pytest.fixture
def bob_api(bob):
    return _api_client_for(bob)


@pytest.fixture(scope="session")
def torchscript_bytes() -> bytes:
    return linear_torchscript_bytes()


@pytest.fixture
def torchscript_upload(torchscript_bytes):
    return SimpleUploadedFile("mlp.pt", torchscript_bytes, content_type="application/octet-stream")


@pytest.fixture
def torchscript_file(torchscript_bytes):
    handle = io.BytesIO(torchscript_bytes)
    handle.name = "mlp.pt"
    return handle


@pytest.fixture(scope="session")
def process_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, process_logs):
    """A real Celery worker process on the test database. Tests that use it need `transactional_db`."""
    worker = processes.start_worker(process_logs / "worker.log")
    yield worker
    processes.stop(worker)
    processes.wait_for_database_sessions_to_end()


@pytest.fixture(scope="session")
def web_server(django_db_setup, process_logs):
    """A real Uvicorn process (HTTP and WebSocket) serving Slimforge on the test database."""
    server, url = processes.start_web(process_logs / "web.log")
    yield url
    processes.stop(server)
    processes.wait_for_database_sessions_to_end()


@pytest.fixture(autouse=True)
def own_media_folder(request, settings, tmp_path):
    """Each in-process test gets an empty media folder; tests with a worker share the run's folder with it."""
    if not {"celery_worker", "web_server"} & set(request.fixturenames):
        settings.MEDIA_ROOT = tmp_path / "media"
