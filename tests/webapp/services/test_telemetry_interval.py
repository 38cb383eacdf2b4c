"""A job's telemetry interval: 0.2-10 s or the worker's default, checked the same way by the service, the API and
the model page's form."""
import math

import pytest
from django.core.exceptions import ValidationError

from tests.factories import ready_model
from tests.webapp.pages.test_pages import _defaults_posted
from webapp import services
from webapp.models import Experiment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("seconds", [0.19, 10.01, -1, math.nan, math.inf, True, "1"])
def test_the_service_refuses_an_interval_outside_the_range_naming_the_field(alice, seconds):
    with pytest.raises(ValidationError) as refused:
        services.experiment_create(owner=alice, model=ready_model(alice), recipe="quantize", config={},
                                   telemetry_interval_s=seconds)
    assert set(refused.value.message_dict) == {"telemetry_interval_s"}
    assert "0.2 to 10" in refused.value.message_dict["telemetry_interval_s"][0]
    assert Experiment.objects.count() == 0


@pytest.mark.parametrize("seconds, stored", [(0.2, 0.2), (10, 10.0), (2.5, 2.5), (None, None)])
def test_the_service_stores_a_valid_interval_or_none_for_the_default(alice, seconds, stored,
                                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        experiment = services.experiment_create(owner=alice, model=ready_model(alice), recipe="quantize",
                                                config={}, telemetry_interval_s=seconds)
    experiment.refresh_from_db()
    assert experiment.telemetry_interval_s == stored


def _post(api, body):
    return api.post("/api/experiments/", body, format="json")


@pytest.mark.parametrize("seconds", ["fast", "1", True, [1], {"s": 1}, 0.1, 11])
def test_the_api_answers_400_naming_the_field(alice, alice_api, seconds):
    response = _post(alice_api, {"model": ready_model(alice).pk, "recipe": "quantize", "config": {},
                                 "telemetry_interval_s": seconds})
    assert response.status_code == 400 and list(response.json()) == ["telemetry_interval_s"], response.json()
    assert Experiment.objects.count() == 0


def test_the_api_takes_the_interval_and_shows_it(alice, alice_api, django_capture_on_commit_callbacks):
    model = ready_model(alice)
    with django_capture_on_commit_callbacks(execute=False):
        given = _post(alice_api, {"model": model.pk, "recipe": "quantize", "config": {}, "telemetry_interval_s": 0.5})
        default = _post(alice_api, {"model": model.pk, "recipe": "quantize", "config": {}})
    assert given.status_code == 201 and given.json()["telemetry_interval_s"] == 0.5
    assert default.status_code == 201 and default.json()["telemetry_interval_s"] is None
    shown = alice_api.get(f"/api/experiments/{given.json()['id']}/").json()
    assert shown["telemetry_interval_s"] == 0.5


def test_the_model_page_has_the_optional_interval_input(alice, client):
    client.force_login(alice)
    page = client.get(f"/models/{ready_model(alice).pk}/").content.decode()
    assert "Telemetry every (s)" in page
    assert ('<input type="number" name="telemetry_interval_s" id="telemetry-interval" min="0.2" max="10" '
            'step="0.1"') in page


def test_the_form_starts_a_job_with_the_interval(alice, client, django_capture_on_commit_callbacks):
    model = ready_model(alice)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/models/{model.pk}/experiments/",
                               {**_defaults_posted("quantize"), "telemetry_interval_s": "0.5"})
        left_empty = client.post(f"/models/{model.pk}/experiments/",
                                 {**_defaults_posted("quantize"), "telemetry_interval_s": ""})
    assert response.status_code == 302 and left_empty.status_code == 302
    assert sorted(Experiment.objects.values_list("telemetry_interval_s", flat=True), key=str) == [0.5, None]


@pytest.mark.parametrize("text, message", [("soon", "Give a number of seconds"), ("0.05", "from 0.2 to 10")])
def test_a_bad_interval_in_the_form_is_a_form_error(alice, client, text, message):
    model = ready_model(alice)
    client.force_login(alice)
    response = client.post(f"/models/{model.pk}/experiments/",
                           {**_defaults_posted("quantize"), "telemetry_interval_s": text})
    assert response.status_code == 302  # back to the form, with the refusal shown once
    page = client.get(response["Location"]).content.decode()
    assert message in page and 'id="telemetry-interval_error"' in page  # the error sits by its field
    assert f'value="{text}"' in page  # what was typed stays in the box
    assert Experiment.objects.count() == 0
