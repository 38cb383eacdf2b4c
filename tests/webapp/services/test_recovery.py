"""Jobs whose worker died: taken over only when no live worker reports them, queued again by the reaper, failed
with "worker lost" after the last attempt; an outcome is written only by the attempt that owns the experiment."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tasks.celery import RUN_EXPERIMENT
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment, OutboxMessage, Worker
from webapp.services.liveness import stale_after_s

pytestmark = pytest.mark.django_db


def _running(owner, *, minutes_ago=5, attempt=1) -> Experiment:
    experiment = Experiment.objects.create(owner=owner, model=ready_model(owner), recipe="quantize")
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w1@box") == 1
    Experiment.objects.filter(pk=experiment.pk).update(
        started_at=timezone.now() - timedelta(minutes=minutes_ago), attempt=attempt)
    return Experiment.objects.get(pk=experiment.pk)


def _worker(name="w1@box", *, running=(), seconds_ago=1, stopped=False) -> Worker:
    now = timezone.now()
    return Worker.objects.create(name=name, host="box", started_at=now - timedelta(hours=1),
                                 last_heartbeat=now - timedelta(seconds=seconds_ago), running=list(running),
                                 stopped_at=now if stopped else None)


def test_a_run_its_live_worker_reports_is_never_taken_over_nor_reaped(alice):
    experiment = _running(alice)
    _worker(running=[experiment.pk])
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w2@box") == 0  # a redelivery, say
    assert services.experiments_recover() == []
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.attempt == 1 and experiment.worker == "w1@box"


def test_a_young_run_is_live_before_its_worker_first_reports_it(alice):
    experiment = _running(alice, minutes_ago=0)
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w2@box") == 0
    assert services.experiments_recover() == []


@pytest.mark.parametrize("worker", ["silent", "stopped", "not reporting it", "none"])
def test_a_lost_run_is_queued_again_for_its_next_attempt(alice, django_capture_on_commit_callbacks, worker):
    experiment = _running(alice)
    if worker == "silent":
        _worker(running=[experiment.pk], seconds_ago=stale_after_s() + 5)  # stopped beating
    elif worker == "stopped":
        _worker(running=[experiment.pk], stopped=True)
    elif worker == "not reporting it":
        _worker(running=[])  # alive, but its pool process running the job died
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.experiments_recover() == [experiment.pk]
    # The task, in the outbox, to be sent again once the transaction commits.
    assert OutboxMessage.objects.filter(task=RUN_EXPERIMENT, object_id=experiment.pk).count() == 1
    assert [callback.__qualname__.split(".")[0] for callback in sent].count("outbox_add") == 1
    experiment.refresh_from_db()
    assert experiment.status == "queued"
    assert "queued again for attempt 2 of 3" in experiment.events.last().record["message"]
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w2@box") == 2
    experiment.refresh_from_db()
    assert experiment.worker == "w2@box" and experiment.events.last().record["note"].startswith("attempt 2 of 3")


def test_a_redelivery_takes_over_a_lost_run_directly(alice):
    experiment = _running(alice)
    _worker(running=[])
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w1@box") == 2


def test_after_the_last_attempt_it_fails_with_worker_lost(alice):
    experiment = _running(alice, attempt=settings.JOB_ATTEMPTS)
    assert services.experiments_recover() == [experiment.pk]
    experiment.refresh_from_db()
    assert experiment.status == "failed"
    assert experiment.error.startswith(f"Worker lost: the job was started {settings.JOB_ATTEMPTS} times")
    queued = _running(alice, attempt=settings.JOB_ATTEMPTS)
    Experiment.objects.filter(pk=queued.pk).update(status="queued")
    assert services.experiment_claim(experiment_id=queued.pk, worker="w2@box") == 0
    assert Experiment.objects.get(pk=queued.pk).status == "failed"


def test_only_the_attempt_that_owns_it_writes_the_outcome(alice):
    experiment = _running(alice)
    _worker(running=[])
    assert services.experiment_claim(experiment_id=experiment.pk, worker="w2@box") == 2
    assert not services.experiment_finish(experiment_id=experiment.pk, status="failed", error="late", attempt=1)
    assert services.experiment_finish(experiment_id=experiment.pk, status="succeeded", attempt=2)
    experiment.refresh_from_db()
    assert experiment.status == "succeeded" and experiment.error == ""


def test_a_lost_run_that_was_being_cancelled_ends_cancelled(alice):
    experiment = _running(alice)
    services.experiment_cancel(user=alice, experiment_id=experiment.pk)
    assert services.experiments_recover() == [experiment.pk]
    assert Experiment.objects.get(pk=experiment.pk).status == "cancelled"


def test_the_heartbeat_reports_what_the_worker_runs(alice):
    worker = services.worker_heartbeat(name="w3@box", host="box", pid=1, started_at=timezone.now(), queues=["q"],
                                       devices=[], load={}, running=[7, 7, 3])
    assert worker.running == [3, 7]
    services.worker_stopped(name="w3@box")
    assert Worker.objects.get(name="w3@box").running == []


def test_the_page_says_which_attempt_it_is(alice, client):
    experiment = _running(alice, attempt=2)
    client.force_login(alice)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "attempt 2 of 3: the previous worker was lost" in page
    assert alice.experiments.get().attempt == 2
