"""Data-parallel fine-tuning on a real worker: 2 gloo ranks inside the sandbox, and a rank killed from outside."""
import os
import signal

import psutil
import pytest

from tests.tasks.worker_jobs import model_and_digits, settled, submit_prune
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
def _ranks_of(worker) -> list[psutil.Process]:
    """The job's rank processes: forked by the job's Python process, so they share its command line."""
    jobs = [p for p in psutil.Process(worker.pid).children(recursive=True) if _is_job(p)]
    return [p for p in jobs if p.parent() is not None and _is_job(p.parent())]


def _is_job(process: psutil.Process) -> bool:
    """The job's Python process or a rank forked from it (not bubblewrap, whose command line holds the job's)."""
    command = process.cmdline()
    return "optimizers.job_child" in command and "python" in command[0]


def test_prune_fine_tunes_on_two_ranks_and_reports_the_scaling(celery_worker, alice_api, tmp_path):
    model, dataset = model_and_digits(alice_api, tmp_path)
    url = submit_prune(alice_api, model, dataset, epochs=2, ranks=2)
    experiment = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=240, what="the prune")
    assert experiment["status"] == "succeeded", experiment["error"]

    distributed = experiment["summary"]["extras"]["distributed"]
    assert distributed["backend"] == "gloo" and distributed["ranks"] == 2
    assert distributed["replica_checks"] == 2 * -(-1438 // 64)  # every step of both epochs, compared
    assert [entry["ranks"] for entry in distributed["scaling"]] == [1, 2]
    assert all(entry["samples_per_s"] > 0 for entry in distributed["scaling"])
    assert experiment["summary"]["after"]["accuracy"] > 0.5  # an untrained upload (0.1 by chance) learned
    events = alice_api.get(url + "events/").json()
    logs = [e["message"] for e in events if e["kind"] == "log"]
    assert any("data-parallel scaling over gloo" in line for line in logs)
    assert any("trained on 2 data-parallel replicas" in line for line in logs)
    assert any(e["kind"] == "metric" and e["name"] == "fine-tune/val_accuracy" for e in events)


@pytest.mark.faults
def test_a_rank_killed_from_outside_fails_the_job_and_leaves_no_process(celery_worker, alice_api, tmp_path):
    model, dataset = model_and_digits(alice_api, tmp_path)
    url = submit_prune(alice_api, model, dataset, epochs=200, early_stopping_patience=0, ranks=2)

    def training_ranks():
        events = alice_api.get(url + "events/").json()
        started = any(e["kind"] == "metric" and e["name"] == "fine-tune/train_loss" for e in events)
        ranks = _ranks_of(celery_worker) if started else []
        return ranks if len(ranks) == 2 else None

    ranks = wait_until(training_ranks, timeout=180, what="two training ranks")
    victim = ranks[1]
    os.kill(victim.pid, signal.SIGKILL)
    experiment = wait_until(lambda: settled(alice_api, url, ("queued", "running")), timeout=60, what="the failure")
    assert experiment["status"] == "failed"
    assert "was killed by SIGKILL" in experiment["error"] and "other replicas were stopped" in experiment["error"]
    wait_until(lambda: not any(rank.is_running() and rank.status() != psutil.STATUS_ZOMBIE for rank in ranks),
               timeout=10, what="the ranks to be gone")
    assert not [p for p in psutil.Process(celery_worker.pid).children(recursive=True)
                if "optimizers.job_child" in p.cmdline()]
