"""The outbox as the fair-use scheduler: each user has at most USER_MAX_RUNNING experiments at the workers, the rest
wait in the outbox and go as earlier ones end; a submit past USER_MAX_QUEUED is refused with the reason. Sends go to
the real broker (a worker that takes one of these finds no committed row and does nothing)."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tasks.celery import INSPECT_MODEL, RUN_EXPERIMENT
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment, OutboxMessage, Worker
from webapp.services.outbox import SWEEP_AFTER_S, lock_outbox_of

pytestmark = pytest.mark.django_db


def _submit(owner, model, run_callbacks):
    with run_callbacks(execute=True):
        return services.experiment_create(owner=owner, model=model, recipe="quantize", config={})


def _waiting(owner) -> list[int]:
    return list(OutboxMessage.objects.filter(owner=owner, task=RUN_EXPERIMENT).values_list("object_id", flat=True))


def test_each_user_has_at_most_its_slots_at_the_workers(alice, bob, settings, django_capture_on_commit_callbacks):
    settings.USER_MAX_RUNNING = 2
    alices_model, bobs_model = ready_model(alice), ready_model(bob)
    alices = [_submit(alice, alices_model, django_capture_on_commit_callbacks) for _ in range(5)]
    for _ in range(2):
        _submit(bob, bobs_model, django_capture_on_commit_callbacks)
    # Alice's first two went to the broker, her other three wait; Bob's two went at once, not behind hers.
    assert _waiting(alice) == [e.pk for e in alices[2:]]
    assert _waiting(bob) == []

    # One of Alice's ends: her next one goes, oldest first.
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_finish(experiment_id=alices[0].pk, status=Experiment.Status.SUCCEEDED)
    assert _waiting(alice) == [e.pk for e in alices[3:]]

    # A cancelled one that still waits is never sent; the heartbeats' sweep drops it from the outbox.
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_cancel(user=alice, experiment_id=alices[4].pk)
    assert services.outbox_send() == 0  # the cancel freed nothing at the workers: Alice still has two there
    assert _waiting(alice) == [alices[3].pk]


def test_a_submit_past_the_cap_is_refused_with_the_reason(alice, alice_api, settings):
    settings.USER_MAX_QUEUED = 2
    model = ready_model(alice)
    for _ in range(2):
        Experiment.objects.create(owner=alice, model=model, recipe="quantize")
    response = alice_api.post("/api/experiments/", {"model": model.pk, "recipe": "quantize", "config": {}},
                              format="json")
    assert response.status_code == 429
    assert "2 experiments queued or running, the most one user may have" in response.json()["detail"]
    assert Experiment.objects.filter(owner=alice).count() == 2


def test_the_experiment_says_why_it_waits(alice, alice_api, client, settings):
    settings.USER_MAX_RUNNING = 1
    model = ready_model(alice)
    experiment = Experiment.objects.create(owner=alice, model=model, recipe="quantize")
    url = f"/api/experiments/{experiment.pk}/"
    assert alice_api.get(url).json()["waiting"] == ""  # not in the outbox: it went to the workers

    message = OutboxMessage.objects.create(task=RUN_EXPERIMENT, object_id=experiment.pk, owner=alice)
    assert alice_api.get(url).json()["waiting"].startswith("Waiting for a slot: at most 1 of your experiments")

    message.last_error = "OperationalError: Error 111 connecting to 127.0.0.1:6379. Connection refused."
    message.save()
    waiting = alice_api.get(url).json()["waiting"]
    assert waiting.startswith("The job queue is unreachable right now; the experiment is saved")
    assert "Connection refused" in waiting
    client.force_login(alice)
    assert "The job queue is unreachable right now" in client.get(f"/experiments/{experiment.pk}/").content.decode()


def test_a_gpu_job_waits_for_a_gpu_worker_without_taking_a_slot(alice, alice_api, settings,
                                                                django_capture_on_commit_callbacks):
    """fp8_cuda with no GPU worker online: held, saying why; a CPU job behind it still goes; a GPU worker's beat
    sends it. (Before, a CPU worker took it and failed it three seconds later.)"""
    settings.USER_MAX_RUNNING = 2
    model = ready_model(alice)
    with django_capture_on_commit_callbacks(execute=True):
        gpu_job = services.experiment_create(owner=alice, model=model, recipe="quantize",
                                             config={"variant": "fp8_cuda"})
    with django_capture_on_commit_callbacks(execute=True):
        cpu_job = services.experiment_create(owner=alice, model=model, recipe="quantize", config={})
    assert _waiting(alice) == [gpu_job.pk]  # the CPU job went; the GPU one did not take its slot
    waiting = alice_api.get(f"/api/experiments/{gpu_job.pk}/").json()["waiting"]
    assert waiting.startswith("Waiting for a GPU worker: variant fp8_cuda runs on a CUDA GPU")
    assert alice_api.get(f"/api/experiments/{cpu_job.pk}/").json()["waiting"] == ""

    # A CPU-only worker, or a GPU worker that stopped or went silent, changes nothing.
    now = timezone.now()
    gpu_queues = ["gpu", "gpu-any", settings.CELERY_TASK_DEFAULT_QUEUE]
    for name, beat, stopped, queues in (("cpu@a", now, None, ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE]),
                                        ("gpu@b", now, now, gpu_queues),
                                        ("gpu@c", now - timedelta(hours=1), None, gpu_queues)):
        Worker.objects.create(name=name, host=name, started_at=now, last_heartbeat=beat, stopped_at=stopped,
                              queues=queues)
    assert services.outbox_send() == 0 and _waiting(alice) == [gpu_job.pk]

    Worker.objects.create(name="gpu@d", host="d", started_at=now, last_heartbeat=now, queues=gpu_queues,
                          devices=[{"index": 0, "name": "H200"}])
    assert services.outbox_send() == 1 and _waiting(alice) == []


def test_a_sweep_leaves_a_fresh_inspection_to_its_submitter_and_sends_a_left_behind_one(alice, settings):
    """An inspection or a dataset goes to the shared queue as the sending process names it: a sweep by another
    process (a worker whose default queue differs) must not race the submitter's own send after its commit."""
    model = ready_model(alice)
    OutboxMessage.objects.create(task=INSPECT_MODEL, object_id=model.pk, owner=alice)
    assert services.outbox_send() == 0  # fresh: the submitter sends it
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(seconds=SWEEP_AFTER_S + 1))
    assert services.outbox_send() == 1  # left behind (its send failed): the sweep takes it
    assert not OutboxMessage.objects.exists()


def test_the_submitters_own_send_takes_a_fresh_inspection_at_once(alice):
    model = ready_model(alice)
    OutboxMessage.objects.create(task=INSPECT_MODEL, object_id=model.pk, owner=alice)
    assert services.outbox_send(owner_ids=[alice.pk]) == 1


def _in_thread(work) -> threading.Thread:
    def run():
        try:
            work()
        finally:
            connection.close()  # the thread's own connection: the test database is dropped at the end
    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_job_left_for_a_bigger_device_while_its_sweep_commits_still_waits_in_the_outbox(alice):
    """A sweep sends the job, and a worker takes it and leaves it for a bigger device before the sweep's commit has
    deleted the message it sent. The worker's decision waits for that commit, so it puts the job back."""
    experiment = Experiment.objects.create(owner=alice, model=ready_model(alice), recipe="quantize", config={})
    OutboxMessage.objects.create(task=RUN_EXPERIMENT, object_id=experiment.pk, owner=alice)
    sent, commit = threading.Event(), threading.Event()

    def sweep():  # as outbox_send: under the owner's lock, the message sent, deleted, committed a moment later
        with transaction.atomic():
            lock_outbox_of(alice.pk)
            OutboxMessage.objects.filter(object_id=experiment.pk).delete()
            sent.set()
            commit.wait(timeout=30)

    sweeping = _in_thread(sweep)
    assert sent.wait(timeout=30)
    left = []
    leaving = _in_thread(lambda: left.append(
        services.experiment_left_for_bigger_device(experiment_id=experiment.pk, note="no room here")))
    time.sleep(0.5)  # the worker's decision is under way, while the sweep has not committed
    commit.set()
    sweeping.join(timeout=30)
    leaving.join(timeout=30)
    assert left == [True]
    assert _waiting(alice) == [experiment.pk]
