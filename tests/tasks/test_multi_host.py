"""A prune that fine-tunes on two worker hosts at once, as one DDP group: two `launcher worker` processes with their
own var folders, temporary folders and caches and a processor each, sharing only PostgreSQL, Redis and an
S3-compatible object store (a real moto server process), both with SLIMFORGE_WORKER_HOST_ADDRESS (the loopback here:
one machine plays both hosts). The first host's job waits for the second, whose sandbox runs only replicas; the
report says both trained and their weights agreed after every step. A worker without an address takes no part."""
import pytest

from tasks.celery import app
from tests.tasks.worker_hosts import start_host, stop_host
from tests.tasks.worker_jobs import model_and_digits, settled
from tests.waiting import wait_until
from webapp.models import Event, Experiment, Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]
STEPS_PER_EPOCH = -(-1438 // 64)


def _live(names: list[str]) -> bool:
    return Worker.objects.filter(name__in=names).count() == len(names)


def test_a_prune_fine_tunes_on_two_hosts_as_one_group(s3_media, object_store, alice_api, settings, tmp_path,
                                                      process_logs, monkeypatch):
    shared = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-multihost"  # this test's shared queue: its hosts only
    monkeypatch.setitem(app.conf, "task_default_queue", shared)
    settings.CELERY_TASK_DEFAULT_QUEUE = shared
    env = {**object_store.env(s3_media), "SLIMFORGE_DEFAULT_QUEUE": shared, "CUDA_VISIBLE_DEVICES": "",
           "SLIMFORGE_WORKER_HOST_ADDRESS": "127.0.0.1", "SLIMFORGE_HOSTS_WAIT_S": "120"}
    hosts = []
    try:
        for name, cpu in (("hosta", "0"), ("hostb", "1")):
            hosts.append(start_host(name, tmp_path / name, env, open(process_logs / f"{name}.log", "wb"), cpus=cpu))
        wait_until(lambda: _live(["cpu@hosta", "cpu@hostb"]), timeout=60, what="both hosts' heartbeats")
        model, dataset = model_and_digits(alice_api, tmp_path)
        response = alice_api.post("/api/experiments/", {
            "model": model["id"], "recipe": "prune", "dataset": dataset["id"], "device_shape": "cpu", "hosts": 2,
            "config": {"method": "unstructured", "agp_steps": 1, "epochs": 2, "ranks": 1}}, format="json")
        assert response.status_code == 201, response.json()
        url = f"/api/experiments/{response.json()['id']}/"
        lending = set()  # the workers the Workers API showed lending their devices to the job while it ran

        def finished():
            lending.update(worker["name"] for worker in alice_api.get("/api/workers/").json()
                           if (worker["current_job"] or {}).get("lends"))
            return settled(alice_api, url, ("queued", "running"))

        experiment = wait_until(finished, timeout=300, what="the prune on two hosts")
    finally:
        for host in hosts:
            stop_host(host)
    assert experiment["status"] == "succeeded", experiment["error"]
    distributed = experiment["summary"]["extras"]["distributed"]
    assert (distributed["backend"], distributed["ranks"], distributed["hosts"]) == ("gloo", 2, 2)
    assert distributed["replica_checks"] == 2 * STEPS_PER_EPOCH  # every step of both epochs, compared across hosts
    assert [(entry["ranks"], entry.get("hosts", 1)) for entry in distributed["scaling"]] == [(1, 1), (2, 2)]
    assert experiment["summary"]["after"]["accuracy"] > 0.5
    logs = [e["message"] for e in alice_api.get(url + "events/").json() if e["kind"] == "log"]
    assert any(line.startswith("all 2 hosts joined the job (host 2: 1 CPU cores)") for line in logs)
    assert any("trained on 2 data-parallel replicas, 1 on each of 2 hosts" in line for line in logs)
    # The other host ran the replicas of both rounds (the scaling probe, then the training) and nothing else.
    # The other host's resources joined the experiment's telemetry, as host2/... series (their own charts).
    theirs = Event.objects.filter(experiment_id=experiment["id"], kind="resource", series__startswith="host2/")
    assert theirs.filter(series="host2/job/cpu_percent").exists()
    first = experiment["worker"].split("@")[1]
    other = "hostb" if first == "hosta" else "hosta"
    assert "host 2 of 2 ran 2 rounds of replicas on 1 CPU cores" in (process_logs / f"{other}.log").read_text()
    # Its telemetry summary was kept beside the first host's (no GPU here, so no energy to add to the job's).
    kept = Experiment.objects.get(pk=experiment["id"]).hosts_telemetry
    assert list(kept) == ["2"] and kept["2"]["attempt"] == 1 and kept["2"]["samples"] > 0
    assert kept["2"]["energy_j"] is None and kept["2"]["nvml"] is False
    # Its heartbeat said so: the Workers page showed it lending its devices to the job, not idle.
    assert lending == {f"cpu@{other}"}
