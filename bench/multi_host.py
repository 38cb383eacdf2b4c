"""One prune that fine-tunes on one worker host, then on two at once as one DDP group. Writes "Multi-host
training" in bench/RESULTS.md.

    make bench-multi-host      # a few minutes; BENCH_MULTI_HOST_EPOCHS=20 epochs

Each host is `python -m launcher worker` with a var folder, temporary folder and cache of its own and one processor
(taskset: host A CPU 0, host B CPU 1, as two one-processor machines), sharing only PostgreSQL, Redis and an
S3-compatible object store (a moto server process), both with SLIMFORGE_WORKER_HOST_ADDRESS=127.0.0.1, as
tests/tasks/test_multi_host.py starts them. The job: unstructured pruning of an untrained ResNet-18 at half width
(2.8 M parameters) on the 8x8 digits with fine-tuning (`ranks` 1 on each host). The same job runs with hosts 1 and
hosts 2; the table gives each run's own figures: the samples/s the two-host job's scaling probe measured (1 replica,
then 2 replicas across the hosts: their ratio is the measured speed-up of training), the fine-tuning's wall time from
its stage events, the job's time and accuracy.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from bench.results import cpu_count, cpu_name, write_results
from optimizers.configs.finetune import TrainSettings
from optimizers.data.job import load_digits_dataset, write_dataset
from optimizers.data.splits import load_splits
from optimizers.reporters import NullReporter
from optimizers.training.hosts import joined
from optimizers.training.loop import fit
from optimizers.zoo.models import build_model
from tasks.celery import app
from tests.optimizers.training.follower_process import loopback_hosts, start_follower
from tests.processes import free_port
from tests.tasks.worker_hosts import start_host, stop_host
from tests.tasks.worker_jobs import model_and_digits, settled
from tests.waiting import wait_until
from webapp.models import Event, Experiment, Worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
EPOCHS = int(os.environ.get("BENCH_MULTI_HOST_EPOCHS", "20"))
BATCH = 512
# ResNet-18 at half width on the 8x8 digits (2.8 M parameters): convolutions do enough work per parameter that the
# step, not the exchange of its gradients, takes most of the time (an MLP of the same size does not scale here).
ARCHITECTURE = {"in_channels": 1, "image_size": 8, "width": 0.5, "num_classes": 10}


def _run(api, model, dataset, hosts: int) -> dict:
    response = api.post("/api/experiments/", {
        "model": model["id"], "recipe": "prune", "dataset": dataset["id"], "device_shape": "cpu", "hosts": hosts,
        "config": {"method": "unstructured", "agp_steps": 1, "epochs": EPOCHS, "batch_size": BATCH, "ranks": 1,
                   "early_stopping_patience": 0}}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/experiments/{response.json()['id']}/"
    body = wait_until(lambda: settled(api, url, ("queued", "running")), timeout=900, interval=2,
                      what=f"the job on {hosts} hosts")
    assert body["status"] == "succeeded", body["error"]
    run = Experiment.objects.get(pk=body["id"])
    stages = [record for record in Event.objects.filter(experiment=run, kind="stage").order_by("seq")
              .values_list("record", flat=True)]
    names = [record["name"] for record in stages]
    tuned = names.index("fine-tune")  # the stage's wall time: from its event to the next stage's (bridge time "t")
    fine_tune_s = stages[tuned + 1]["t"] - stages[tuned]["t"]
    scaling = body["summary"]["extras"]["distributed"]["scaling"] if hosts > 1 else None
    return {"hosts": hosts, "job_s": (run.finished_at - run.started_at).total_seconds(),
            "fine_tune_s": fine_tune_s, "accuracy": body["summary"]["after"]["accuracy"],
            "scaling": scaling}


def _bare_scaling(cpus: list[int]) -> list[dict]:
    """The same training's scaling with nothing of the product around it: the first host in this process, the second
    a subprocess (optimizers.training.follower), each pinned to a processor of its own, over the loopback."""
    folder = Path(tempfile.mkdtemp(prefix="slimforge-bench-"))
    write_dataset(load_digits_dataset(), folder)
    digits = load_splits(folder / "dataset.npz")
    port = free_port()
    second = start_follower(loopback_hosts(1, port), folder, str(cpus[1 % len(cpus)]))
    mine, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        os.sched_setaffinity(0, {cpus[0]})
        torch.set_num_threads(1)
        with joined(loopback_hosts(0, port), NullReporter()):
            outcome = fit(build_model("resnet", ARCHITECTURE), digits, (1, 1, 8, 8),
                          TrainSettings(epochs=1, batch_size=BATCH, ranks=1), NullReporter())
        second.wait(60)
    finally:
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(threads)
        second.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return outcome.distributed["scaling"]


def test_a_prune_on_one_host_and_on_two(s3_media, object_store, alice_api, settings, tmp_path, process_logs,
                                        monkeypatch):
    shared = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-bench-hosts"
    monkeypatch.setitem(app.conf, "task_default_queue", shared)
    settings.CELERY_TASK_DEFAULT_QUEUE = shared
    # The product's own heartbeat and telemetry rates, not the tests' faster ones: on two processors, every bit of
    # other work steals from one of the replicas, and the other waits for it at each step.
    settings.WORKER_HEARTBEAT_S = 5.0  # this side judges the workers' liveness by the same rate
    env = {**object_store.env(s3_media), "SLIMFORGE_DEFAULT_QUEUE": shared, "CUDA_VISIBLE_DEVICES": "",
           "SLIMFORGE_WORKER_HOST_ADDRESS": "127.0.0.1", "SLIMFORGE_HEARTBEAT_MS": "5000",
           "SLIMFORGE_TELEMETRY_MS": "1000"}
    cpus = sorted(os.sched_getaffinity(0))
    hosts = []
    try:
        for index, name in enumerate(("hosta", "hostb")):
            hosts.append(start_host(name, tmp_path / name, env, open(process_logs / f"bench-{name}.log", "wb"),
                                    cpus=str(cpus[index % len(cpus)])))
        wait_until(lambda: Worker.objects.filter(name__in=["cpu@hosta", "cpu@hostb"]).count() == 2, timeout=90,
                   what="both hosts' heartbeats")
        model, dataset = model_and_digits(alice_api, tmp_path, "resnet", json.dumps(ARCHITECTURE), "1,1,8,8")
        one, two = _run(alice_api, model, dataset, 1), _run(alice_api, model, dataset, 2)
    finally:
        for host in hosts:
            stop_host(host)
    bare = _bare_scaling(cpus)
    single, across = two["scaling"][0], two["scaling"][-1]
    speedup = across["samples_per_s"] / single["samples_per_s"]
    rows = [f"| {r['hosts']} | {r['fine_tune_s']:.1f} s | {r['job_s']:.1f} s | {r['accuracy']:.3f} |"
            for r in (one, two)]
    body = "\n".join([
        f"Machine: {cpu_name()}, {cpu_count()} CPUs (both hosts on it, one processor each, over the loopback; object "
        f"store: moto). The job: unstructured prune of a ResNet-18 at half width on the 8x8 digits, "
        f"fine-tuned {EPOCHS} epochs at batch {BATCH}, ranks 1 on each host (gloo).",
        "", "| hosts | fine-tuning | whole job | accuracy after |", "|---|---|---|---|", *rows, "",
        f"The two-host job's own scaling probe: 1 replica {single['samples_per_s']:,.0f} samples/s, 2 replicas on 2 "
        f"hosts {across['samples_per_s']:,.0f} samples/s: **{speedup:.2f}x** (efficiency {across['efficiency']:.2f}). "
        f"Fine-tuning time, two hosts over one: {two['fine_tune_s'] / one['fine_tune_s']:.2f}x.",
        "",
        "The same training with nothing of the product around it (the first host in the bench's process, the second "
        "a subprocess, one processor each; no web, database, workers or telemetry on the same two processors): "
        f"1 replica {bare[0]['samples_per_s']:,.0f} samples/s, 2 replicas on 2 hosts "
        f"{bare[-1]['samples_per_s']:,.0f} samples/s: **{bare[-1]['samples_per_s'] / bare[0]['samples_per_s']:.2f}x**"
        ". With two processors for everything, each step of the replicas waits for the slower one.",
        "",
    ])
    print("\n" + body)
    write_results("Multi-host training (two CPU hosts)", body)
