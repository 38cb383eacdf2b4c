"""The HTML pages: login everywhere, owners only, form errors instead of failed jobs."""
import pytest

from tests.factories import experiment_with_artifact, ready_model
from webapp.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/models/", "/models/1/", "/experiments/1/"])
def test_every_page_needs_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_is_public(client):
    assert client.get("/accounts/login/").status_code == 200


def test_bob_gets_404_for_alices_pages(alice, bob, client):
    experiment, _ = experiment_with_artifact(alice)
    client.force_login(bob)
    assert client.get(f"/models/{experiment.model_id}/").status_code == 404
    assert client.get(f"/experiments/{experiment.pk}/").status_code == 404
    assert client.post(f"/models/{experiment.model_id}/experiments/", {"recipe": "quantize"}).status_code == 404


def test_model_page_shows_the_inspection_and_the_recipe_form(alice, client):
    model = ready_model(alice, name="tiny-mlp")
    client.force_login(alice)
    page = client.get(f"/models/{model.pk}/").content.decode()
    assert "tiny-mlp" in page and "experiment-form" in page and "per channel" in page.lower()


def test_a_bad_setting_is_a_form_error_and_nothing_is_queued(alice, client):
    model = ready_model(alice)
    client.force_login(alice)
    response = client.post(f"/models/{model.pk}/experiments/", {"recipe": "quantize", "quantize-variant": "int3"})
    assert response.status_code == 302 and response["Location"] == f"/models/{model.pk}/#experiment-form"
    assert Experiment.objects.count() == 0
    page = client.get(f"/models/{model.pk}/").content.decode()
    assert 'id="id_quantize-variant_error"' in page and "int3" in page
    assert "int3" not in client.get(f"/models/{model.pk}/").content.decode()  # shown once, then dropped


def test_a_refusal_waits_only_for_its_own_page(alice, client):
    refused, other = ready_model(alice, name="refused"), ready_model(alice, name="other")
    client.force_login(alice)
    client.post(f"/models/{refused.pk}/experiments/", {"recipe": "quantize", "quantize-variant": "int3"})
    assert "int3" not in client.get(f"/models/{other.pk}/").content.decode()
    assert "int3" in client.get(f"/models/{refused.pk}/").content.decode()


def test_starting_an_experiment_redirects_to_its_page(alice, client, django_capture_on_commit_callbacks):
    model = ready_model(alice)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/models/{model.pk}/experiments/", _defaults_posted("quantize"))
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.config["per_channel"] is True


def test_plotly_is_served_from_the_installed_package(client, alice):
    client.force_login(alice)
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/plotly.min.js").endswith("plotly.min.js")


def _defaults_posted(recipe: str) -> dict:
    """What the browser posts for a recipe form left at its defaults."""
    from optimizers.configs import RECIPE_CONFIGS

    data = {"recipe": recipe}
    for spec in RECIPE_CONFIGS[recipe].describe_fields():
        if spec["type"] == "boolean":
            if spec["default"]:
                data[f"{recipe}-{spec['name']}"] = "on"
        else:
            data[f"{recipe}-{spec['name']}"] = spec["default"]
    return data
