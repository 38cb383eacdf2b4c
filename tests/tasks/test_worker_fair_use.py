"""Fair use with a real worker: Alice queues five jobs, then Bob two. With at most two of each user's jobs at the
workers (SLIMFORGE_USER_MAX_RUNNING's default), Bob's start after Alice's first two, not after all five."""
import pytest
from django.conf import settings

from tests.tasks.worker_jobs import model_and_digits
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(api, model) -> int:
    response = api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize",
                                              "config": {"variant": "dynamic_int8"}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_users_jobs_interleave_when_the_queue_is_long(celery_worker, alice_api, bob_api, tmp_path):
    assert settings.USER_MAX_RUNNING == 2
    for name in ("alice", "bob"):
        (tmp_path / name).mkdir()
    alices_model, _ = model_and_digits(alice_api, tmp_path / "alice")
    bobs_model, _ = model_and_digits(bob_api, tmp_path / "bob")
    alices = [_submit(alice_api, alices_model) for _ in range(5)]
    bobs = [_submit(bob_api, bobs_model) for _ in range(2)]
    everything = alices + bobs
    wait_until(lambda: not Experiment.objects.filter(pk__in=everything, status__in=("queued", "running")).exists(),
               timeout=300, what="every job")
    runs = Experiment.objects.filter(pk__in=everything).order_by("started_at")
    assert all(run.status == "succeeded" and run.attempt == 1 for run in runs)
    order = ["bob" if run.pk in bobs else "alice" for run in runs]
    # First come, first served would run Bob's last; here they come third and fourth, after Alice's first two.
    assert order == ["alice", "alice", "bob", "bob", "alice", "alice", "alice"], order
