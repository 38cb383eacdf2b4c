"""The home page's first-run path, the sample model and dataset buttons, the 404 page and the dataset previews."""
import re

import pytest
from django.test import Client

from tests.factories import experiment_with_artifact, ready_model
from webapp.models import Dataset, Experiment, OutboxMessage, UploadedModel

pytestmark = pytest.mark.django_db


def _step_classes(page: str) -> dict:
    return {name: cls for cls, name in re.findall(r'<li class="step ([a-z ]*)" id="step-(\w+)"', page)}


def test_a_new_user_sees_the_four_steps_and_both_sample_buttons(alice, client):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert _step_classes(page) == {"model": "current", "dataset": "", "experiment": "", "download": ""}
    assert 'action="/start/sample-model/"' in page and 'action="/start/sample-dataset/"' in page
    assert page.count('aria-current="step"') == 1


def test_the_steps_say_where_the_user_stands(alice, bob, client):
    experiment, artifact = experiment_with_artifact(alice)
    Dataset.objects.create(owner=alice, name="digits", kind="digits", status="ready",
                           info={"samples": 1797, "num_classes": 10})
    ready_model(bob, name="bobs-model")  # another user's things count for nothing here
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert _step_classes(page) == {"model": "done", "dataset": "done", "experiment": "done", "download": "current"}
    assert f"/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/" in page
    assert "2\xa0bytes" in page  # filesizeformat keeps the number and its unit together
    assert "bobs-model" not in page and "sample-model-form" not in page
    client.force_login(bob)
    assert _step_classes(client.get("/").content.decode())["dataset"] == "current"


def test_the_sample_model_is_the_users_own_upload_queued_for_inspection(alice, client):
    client.force_login(alice)
    response = client.post("/start/sample-model/")
    assert response.status_code == 302 and response["Location"] == "/"
    model = UploadedModel.objects.get()
    assert model.owner == alice and model.status == "pending" and model.input_shape == [1, 1, 8, 8]
    assert model.architecture == {"name": "mlp", "config": {"in_features": 64, "hidden": [64], "num_classes": 10,
                                                             "dropout": 0.1}}
    assert model.file.name != "" and model.size_bytes == model.file.size > 0
    assert OutboxMessage.objects.filter(object_id=model.pk).exists()
    page = client.get("/").content.decode()
    assert f'data-pending="/api/models/{model.pk}/"' in page and "sample-model-form" not in page


def test_the_digits_button_adds_the_built_in_dataset(alice, client):
    client.force_login(alice)
    assert client.post("/start/sample-dataset/").status_code == 302
    dataset = Dataset.objects.get()
    assert dataset.owner == alice and dataset.kind == Dataset.Kind.DIGITS and dataset.status == "pending"


@pytest.mark.parametrize("path", ["/start/sample-model/", "/start/sample-dataset/"])
def test_the_sample_buttons_take_only_a_post_with_its_csrf_token(alice, path):
    strict = Client(enforce_csrf_checks=True)
    assert strict.get(path)["Location"].startswith("/accounts/login/")
    strict.force_login(alice)
    assert strict.get(path).status_code == 405
    assert strict.post(path).status_code == 403
    assert not UploadedModel.objects.exists() and not Dataset.objects.exists()


def test_a_missing_page_and_another_users_experiment_are_404_with_the_navigation(alice, bob, client):
    experiment, _ = experiment_with_artifact(alice)
    client.force_login(bob)
    for path in ("/no-such-page/", f"/experiments/{experiment.pk}/"):
        response = client.get(path)
        page = response.content.decode()
        assert response.status_code == 404, path
        assert 'id="not-found"' in page and '<nav><a href="/experiments/">Experiments</a>' in page, path
        assert "bob" in page and "Log out" in page
    assert Experiment.objects.get().owner == alice


def test_each_preview_shows_its_class(alice, client):
    from django.core.files.base import ContentFile

    dataset = Dataset.objects.create(owner=alice, name="digits", kind="digits", status="ready",
                                     info={"samples": 3, "sample_shape": [1, 8, 8], "has_labels": True,
                                           "num_classes": 10, "preview_labels": {"preview_0.png": "zero",
                                                                                 "preview_1.png": "one"}})
    for name in ("preview_0.png", "preview_1.png"):
        dataset.files.create(name=name, file=ContentFile(b"\x89PNG", name=name))
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "<figcaption>zero</figcaption>" in page and "<figcaption>one</figcaption>" in page
