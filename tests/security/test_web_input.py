"""Red team, through the web: input no view can store or parse is a 400 that names it, never a 500."""
import pytest

from tests.factories import experiment_with_artifact
from webapp.models import Dataset

pytestmark = pytest.mark.django_db


def test_nul_in_json_is_refused_and_nothing_is_stored(alice_api):
    response = alice_api.post("/api/datasets/", {"name": "a\x00b", "kind": "digits"}, format="json")
    assert response.status_code == 400 and "NUL characters" in response.json()["detail"]
    assert not Dataset.objects.exists()


def test_json_nested_thousands_deep_is_refused(alice_api):
    body = '{"name": ' + "[" * 5000 + "]" * 5000 + ', "kind": "digits"}'
    response = alice_api.post("/api/datasets/", data=body, content_type="application/json")
    assert response.status_code == 400 and "nested more than 64 levels" in response.json()["detail"]


def test_brackets_inside_strings_do_not_count_as_nesting(alice_api):
    response = alice_api.post("/api/datasets/", {"name": "[[[[" * 20 + "\\\"" + "{{" * 20, "kind": "digits"},
                              format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("path", ["/experiments/?q=a%00b", "/api/experiments/?status=a%00b", "/models/?x%00=1"])
def test_nul_in_a_query_is_refused(alice, client, path):
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code == 400 and b"NUL characters are not accepted in query parameters" in response.content


def test_nul_in_a_form_field_is_refused(alice, client):
    client.force_login(alice)
    response = client.post("/datasets/", {"name": "x\x00y", "kind": "digits"})
    assert response.status_code == 400 and b"NUL characters are not accepted in form fields" in response.content
    assert not Dataset.objects.exists()


def test_nul_in_a_multipart_field_is_refused(alice_api):
    response = alice_api.post("/api/models/", {"name": "m\x00", "input_shape": "1,4"}, format="multipart")
    assert response.status_code == 400 and "NUL characters" in response.json()["detail"]


def test_a_download_whose_file_storage_lost_is_a_404_that_says_so(alice, alice_api):
    experiment, artifact = experiment_with_artifact(alice)
    url = f"/api/experiments/{experiment.id}/artifacts/{artifact.id}/"
    assert alice_api.get(url).status_code == 200
    artifact.file.storage.delete(artifact.file.name)  # lost: a disk replaced, a folder cleaned by hand
    response = alice_api.get(url)
    assert response.status_code == 404 and "missing from storage" in response.json()["detail"]
