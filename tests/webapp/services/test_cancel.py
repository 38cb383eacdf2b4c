"""Cancel: a queued experiment ends at once and is never claimed; a running one is asked to stop; finished ones
and other users' are refused; on the pages, the buttons and what they say."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import ready_model
from webapp import selectors, services
from webapp.models import Experiment

pytestmark = pytest.mark.django_db


def _experiment(owner):
    return Experiment.objects.create(owner=owner, model=ready_model(owner), recipe="quantize")


def test_a_queued_experiment_is_cancelled_at_once_and_never_claimed(alice):
    experiment = services.experiment_cancel(user=alice, experiment_id=_experiment(alice).pk)
    assert experiment.status == "cancelled" and experiment.cancelled_by == alice and experiment.finished_at
    assert experiment.events.last().record == {"kind": "status", "status": "cancelled", "error": "",
                                               "note": "cancelled by alice", "seq": 1,
                                               "t": experiment.events.last().record["t"]}
    assert not services.experiment_claim(experiment_id=experiment.pk, worker="w1")


def test_a_running_experiment_is_asked_to_stop_and_the_worker_sees_it(alice):
    experiment = _experiment(alice)
    services.experiment_claim(experiment_id=experiment.pk, worker="w1")
    assert not selectors.experiment_cancel_requested(experiment_id=experiment.pk)
    asked = services.experiment_cancel(user=alice, experiment_id=experiment.pk)
    assert asked.status == "running" and asked.cancel_requested_at and not asked.is_cancellable
    assert selectors.experiment_cancel_requested(experiment_id=experiment.pk)
    assert "Cancel requested by alice" in asked.events.last().record["message"]
    again = services.experiment_cancel(user=alice, experiment_id=experiment.pk)  # a second click: no second event
    assert again.last_seq == asked.last_seq
    services.experiment_finish(experiment_id=experiment.pk, status="cancelled")
    experiment.refresh_from_db()
    assert experiment.status == "cancelled" and experiment.events.last().record["note"] == "cancelled by alice"


def test_a_late_outcome_does_not_overwrite_a_cancel(alice):
    experiment = services.experiment_cancel(user=alice, experiment_id=_experiment(alice).pk)
    services.experiment_finish(experiment_id=experiment.pk, status="succeeded")  # a run that raced the cancel
    experiment.refresh_from_db()
    assert experiment.status == "cancelled" and experiment.events.count() == 1


def test_a_cancelled_running_job_delivered_again_after_its_worker_died_ends_cancelled(alice):
    experiment = _experiment(alice)
    services.experiment_claim(experiment_id=experiment.pk, worker="w1")
    services.experiment_cancel(user=alice, experiment_id=experiment.pk)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=timezone.now() - timedelta(minutes=5))  # its run
    assert not services.experiment_claim(experiment_id=experiment.pk, worker="w2")  # ... lost: no worker reports it
    experiment.refresh_from_db()
    assert experiment.status == "cancelled" and experiment.worker == "w1"


def test_finished_and_other_users_experiments_are_refused(alice, bob):
    experiment = _experiment(alice)
    with pytest.raises(Experiment.DoesNotExist):
        services.experiment_cancel(user=bob, experiment_id=experiment.pk)
    services.experiment_claim(experiment_id=experiment.pk, worker="w1")
    services.experiment_finish(experiment_id=experiment.pk, status="succeeded")
    with pytest.raises(ValidationError, match="already succeeded; there is nothing to cancel"):
        services.experiment_cancel(user=alice, experiment_id=experiment.pk)


def test_the_api_answers_200_409_and_404(alice, alice_api, bob_api):
    experiment = _experiment(alice)
    assert bob_api.post(f"/api/experiments/{experiment.pk}/cancel/").status_code == 404
    response = alice_api.post(f"/api/experiments/{experiment.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = alice_api.post(f"/api/experiments/{experiment.pk}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_the_buttons_on_the_page_and_the_list(alice, client):
    client.force_login(alice)
    experiment = _experiment(alice)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    listed = client.get("/experiments/").content.decode()
    action = f'action="/experiments/{experiment.pk}/cancel/"'
    assert action in page and action in listed
    response = client.post(f"/experiments/{experiment.pk}/cancel/", {"next": "/experiments/?status=queued"},
                           follow=True)
    assert response.redirect_chain[-1][0] == "/experiments/?status=queued"
    assert f"Experiment #{experiment.pk} is cancelled." in response.content.decode()
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert action not in page and "Cancelled by alice at" in page
    elsewhere = client.post(f"/experiments/{experiment.pk}/cancel/", {"next": "https://evil.example/"})
    assert elsewhere["Location"] == f"/experiments/{experiment.pk}/"  # never sent off-site
    assert "already cancelled" in client.get(elsewhere["Location"]).content.decode()
    assert client.get(f"/experiments/{experiment.pk}/cancel/").status_code == 405
