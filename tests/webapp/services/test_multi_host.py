"""Multi-host jobs, the web side: `hosts` is checked by name (a form error, an API 400), kept by "run again", and the
outbox holds a job on N hosts until N live workers of its shape take multi-host jobs (their heartbeat reports a
host_address, from SLIMFORGE_WORKER_HOST_ADDRESS), saying so on its page, then sends it to its queue."""
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from tests.factories import ready_model
from tests.webapp.pages.test_pages import _defaults_posted
from tests.webapp.services.test_device_routing import (
    _broker_queue,
    _worker,
    empty_shape_queues,  # noqa: F401 - autouse: empty queues
)
from tests.webapp.services.test_rerun import _digits
from webapp import services
from webapp.models import Experiment, OutboxMessage, Worker
from webapp.selectors.devices import HostPool
from webapp.services.outbox import _send_for

pytestmark = pytest.mark.django_db
SMALL_PRUNE = {"method": "unstructured", "epochs": 1}


def _trainable_model(owner):
    model = ready_model(owner)
    model.info["recipes"]["prune"] = {"applicable": True, "reason": ""}
    model.save()
    return model


def _multi_host_worker(name: str, queues: list[str], address: str) -> Worker:
    worker = _worker(name, queues)
    Worker.objects.filter(pk=worker.pk).update(load={"cpu_count": 8, "host_address": address})
    return worker


def _prune_on_hosts(owner, run_callbacks, hosts: int, shape: str = "cpu") -> Experiment:
    with run_callbacks(execute=True):
        return services.experiment_create(owner=owner, model=_trainable_model(owner), recipe="prune",
                                          config=SMALL_PRUNE, dataset=_digits(owner), device_shape=shape, hosts=hosts)


def test_the_api_refuses_hosts_naming_the_field(alice, alice_api, settings):
    model = _trainable_model(alice)
    dataset = _digits(alice)
    prune = {"model": model.pk, "recipe": "prune", "dataset": dataset.pk, "config": SMALL_PRUNE}
    for hosts in (0, settings.MAX_HOSTS + 1, "2", True, 1.5):
        response = alice_api.post("/api/experiments/", {**prune, "device_shape": "cpu", "hosts": hosts}, format="json")
        assert response.status_code == 400, (hosts, response.json())
        assert f"from 1 to {settings.MAX_HOSTS}" in response.json()["hosts"][0]
    anywhere = alice_api.post("/api/experiments/", {**prune, "hosts": 2}, format="json")
    assert anywhere.status_code == 400 and "every host must give the same devices" in anywhere.json()["hosts"][0]
    quantize = alice_api.post("/api/experiments/", {"model": model.pk, "recipe": "quantize", "device_shape": "cpu",
                                                    "hosts": 2}, format="json")
    assert quantize.status_code == 400
    assert quantize.json()["hosts"] == ["Training on several hosts needs a recipe that trains (prune with "
                                        "fine-tuning, distill)."]
    assert not Experiment.objects.exists() and not OutboxMessage.objects.exists()

    made = alice_api.post("/api/experiments/", {**prune, "device_shape": "cpu", "hosts": 2}, format="json")
    assert made.status_code == 201 and made.json()["hosts"] == 2
    assert alice_api.post("/api/experiments/", prune, format="json").json()["hosts"] == 1  # one by default


def test_the_form_refuses_hosts_by_name_and_keeps_what_was_posted(alice, client):
    model = _trainable_model(alice)
    client.force_login(alice)
    form = client.get(f"/models/{model.pk}/").content.decode()
    assert 'name="hosts" id="experiment-hosts" min="1" max="16" step="1"' in form and 'value="1"' in form
    assert "Needs workers started with SLIMFORGE_WORKER_HOST_ADDRESS." in form
    for hosts, words in (("3", "needs a recipe that trains"), ("two", "Give a whole number of hosts from 1 to 16")):
        response = client.post(f"/models/{model.pk}/experiments/", {**_defaults_posted("quantize"),
                                                                    "device_shape": "cpu", "hosts": hosts})
        assert response.status_code == 302 and response.url.endswith("#experiment-form")
        page = client.get(response.url).content.decode()
        assert '<p class="field-error" id="experiment-hosts_error">' in page and words in page
        assert f'value="{hosts}" class="invalid" aria-invalid="true"' in page
        assert '<option value="cpu" selected>' in page
    assert not Experiment.objects.exists()


def test_a_rerun_keeps_its_sources_hosts_unless_given(alice, alice_api, bob, bob_api, client,
                                                      django_capture_on_commit_callbacks):
    source = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=3)
    again = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {}, format="json")
    assert again.status_code == 201 and again.json()["hosts"] == 3 and again.json()["device_shape"] == "cpu"
    fewer = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {"hosts": 1}, format="json")
    assert fewer.status_code == 201 and fewer.json()["hosts"] == 1
    anywhere = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {"device_shape": "any"}, format="json")
    assert anywhere.status_code == 400 and "same devices" in anywhere.json()["hosts"][0]

    client.force_login(alice)
    form = client.get(f"/experiments/{source.pk}/rerun/").content.decode()
    assert 'id="experiment-hosts" min="1" max="16" step="1"\n             value="3"' in form
    page = client.get(f"/experiments/{source.pk}/").content.decode()
    assert '<span id="exp-device-shape">cpu</span> <span id="exp-hosts">on 3 hosts</span>' in page

    # Another user's reads like a missing one, on every route.
    assert bob_api.get(f"/api/experiments/{source.pk}/").status_code == 404
    assert bob_api.post(f"/api/experiments/{source.pk}/rerun/", {"hosts": 1}, format="json").status_code == 404
    client.force_login(bob)
    assert client.get(f"/experiments/{source.pk}/").status_code == 404


def test_a_job_on_two_hosts_waits_for_two_multi_host_workers_of_its_shape(alice, alice_api, settings,
                                                                           django_capture_on_commit_callbacks):
    settings.USER_MAX_RUNNING = 1
    _multi_host_worker("cpu@a", ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE], "10.0.0.5")
    _worker("cpu@b", ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE])  # serves cpu, but takes no multi-host jobs
    _multi_host_worker("gpu-0@c", ["gpu", "gpu-any"], "10.0.0.7")  # takes them, but of another shape
    gone = _multi_host_worker("cpu@d", ["cpu"], "10.0.0.9")  # took them, but its heartbeat is old
    Worker.objects.filter(pk=gone.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))

    two = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=2)
    assert list(OutboxMessage.objects.values_list("object_id", flat=True)) == [two.pk]
    assert alice_api.get(f"/api/experiments/{two.pk}/").json()["waiting"].startswith(
        "Waiting for 2 workers of shape cpu that take multi-host jobs (SLIMFORGE_WORKER_HOST_ADDRESS): 1 is online.")
    # It takes no slot: the owner's next job (one host) goes to the workers meanwhile, at the next sweep.
    one = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=1)
    assert services.outbox_send() == 1 and _broker_queue(settings, "cpu") == [one.pk]
    assert services.outbox_send() == 0

    _multi_host_worker("cpu@e", ["cpu"], "10.0.0.6")
    Experiment.objects.filter(pk=one.pk).update(status=Experiment.Status.SUCCEEDED)  # its slot is free again
    assert services.outbox_send() == 1
    assert sorted(_broker_queue(settings, "cpu")) == [two.pk, one.pk]
    assert not OutboxMessage.objects.exists()
    assert alice_api.get(f"/api/experiments/{two.pk}/").json()["waiting"] == ""


def test_the_waiting_note_counts_no_multi_host_worker_as_none(alice, alice_api, settings,
                                                              django_capture_on_commit_callbacks):
    _worker("gpu-x2-0@a", ["gpu-x2", "gpu-any"], gpus=2)
    job = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=4, shape="gpu-x2")
    assert OutboxMessage.objects.filter(object_id=job.pk).exists()
    assert alice_api.get(f"/api/experiments/{job.pk}/").json()["waiting"].startswith(
        "Waiting for 4 workers of shape gpu-x2 that take multi-host jobs (SLIMFORGE_WORKER_HOST_ADDRESS): none is "
        "online.")


def test_multi_host_jobs_never_promise_a_worker_twice(alice, bob, alice_api, bob_api, settings,
                                                      django_capture_on_commit_callbacks):
    """Gang scheduling: with two multi-host workers, two 2-host jobs would each take one as its first host and wait
    for ever for the other (each one's join task queues behind the other's job). The second goes only once the first
    has given its workers back; other users' jobs count too, and so does the same user's next one."""
    settings.USER_MAX_RUNNING = 3
    _multi_host_worker("cpu@a", ["cpu"], "10.0.0.5")
    _multi_host_worker("cpu@b", ["cpu"], "10.0.0.6")
    first = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=2)
    second = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=2)
    theirs = _prune_on_hosts(bob, django_capture_on_commit_callbacks, hosts=2)
    services.outbox_send()
    assert _broker_queue(settings, "cpu") == [first.pk]
    assert set(OutboxMessage.objects.values_list("object_id", flat=True)) == {second.pk, theirs.pk}
    for api, job in ((alice_api, second), (bob_api, theirs)):
        assert api.get(f"/api/experiments/{job.pk}/").json()["waiting"] == (
            "Waiting for 2 workers of shape cpu that take multi-host jobs (SLIMFORGE_WORKER_HOST_ADDRESS): 2 are "
            "online, and other multi-host jobs hold 2 of them. It starts when enough are free (or cancel it, or run "
            "it again on fewer hosts).")
    # A single-host job takes no promise: it goes meanwhile.
    one = _prune_on_hosts(bob, django_capture_on_commit_callbacks, hosts=1)
    assert one.pk in _broker_queue(settings, "cpu")

    Experiment.objects.filter(pk=first.pk).update(status=Experiment.Status.RUNNING)  # still holds both
    assert services.outbox_send() == 0
    Experiment.objects.filter(pk=first.pk).update(status=Experiment.Status.FAILED)  # gave them back
    assert services.outbox_send() == 1
    assert _broker_queue(settings, "cpu").count(second.pk) + _broker_queue(settings, "cpu").count(theirs.pk) == 1
    assert OutboxMessage.objects.count() == 1


def test_a_sender_counts_the_hosts_again_under_the_lock(alice, bob, settings, django_capture_on_commit_callbacks):
    """What another user's sender promised after this one read the pool is counted before sending: a stale `hosts`
    condition (here: every job looks free) still sends no job whose workers are taken."""
    _multi_host_worker("cpu@a", ["cpu"], "10.0.0.5")
    _multi_host_worker("cpu@b", ["cpu"], "10.0.0.6")
    mine = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=2)
    assert _broker_queue(settings, "cpu") == [mine.pk]
    with django_capture_on_commit_callbacks(execute=False):
        theirs = services.experiment_create(owner=bob, model=_trainable_model(bob), recipe="prune",
                                            config=SMALL_PRUNE, dataset=_digits(bob), device_shape="cpu", hosts=2)
    assert _send_for(bob.pk, sweep=False, served={"cpu"}, hosts=Q()) == 0
    assert OutboxMessage.objects.filter(object_id=theirs.pk).exists()


def test_the_host_pool_counts_a_job_against_every_queue_its_workers_serve(db):
    pool = HostPool(serving={"cpu": {"a", "b"}, "slimforge": {"b", "c"}, "gpu": {"g1", "g2"}}, held=[])
    assert pool.take("cpu", 2) and not pool.take("cpu", 1)
    # A job on slimforge may use b, which the cpu job may use too: cautious, it counts whole.
    assert pool.free("slimforge") == 0 and not pool.take("slimforge", 2)
    assert pool.free("gpu") == 2 and pool.take("gpu", 2) and pool.free("gpu") == 0
    assert pool.free("unserved") == 0 and not pool.take("unserved", 2)


def test_the_job_energy_counts_every_host_of_the_current_attempt(alice, alice_api, django_capture_on_commit_callbacks):
    """Each further host keeps its telemetry summary beside the first host's (services.experiment_host_telemetry);
    the comparison's "energy of the job" adds every host's GPU energy, of the run that counts only."""
    job = _prune_on_hosts(alice, django_capture_on_commit_callbacks, hosts=3)
    Experiment.objects.filter(pk=job.pk).update(status=Experiment.Status.RUNNING, attempt=2,
                                                summary={"telemetry": {"energy_j": 100.0}})
    assert not services.experiment_host_telemetry(experiment_id=job.pk, attempt=1, host=2,
                                                   telemetry={"energy_j": 999.0})  # an attempt taken over
    assert services.experiment_host_telemetry(experiment_id=job.pk, attempt=2, host=2, telemetry={"energy_j": 40.5})
    assert services.experiment_host_telemetry(experiment_id=job.pk, attempt=2, host=3, telemetry={"energy_j": None})
    job.refresh_from_db()
    assert job.hosts_telemetry == {"2": {"energy_j": 40.5, "attempt": 2}, "3": {"energy_j": None, "attempt": 2}}
    Experiment.objects.filter(pk=job.pk).update(status=Experiment.Status.SUCCEEDED)
    compared = alice_api.get(f"/api/compare/?ids={job.pk}")
    assert compared.status_code == 200, compared.content
    [entry] = compared.json()["experiments"]
    assert entry["job_energy_j"] == 140.5

    # A later attempt starts afresh: the earlier one's hosts no longer count, and are dropped at its first write.
    Experiment.objects.filter(pk=job.pk).update(attempt=3, summary={"telemetry": {"energy_j": None}})
    assert alice_api.get(f"/api/compare/?ids={job.pk}").json()["experiments"][0]["job_energy_j"] is None
    assert services.experiment_host_telemetry(experiment_id=job.pk, attempt=3, host=3, telemetry={"energy_j": 7.0})
    job.refresh_from_db()
    assert job.hosts_telemetry == {"3": {"energy_j": 7.0, "attempt": 3}}
    assert alice_api.get(f"/api/compare/?ids={job.pk}").json()["experiments"][0]["job_energy_j"] == 7.0
