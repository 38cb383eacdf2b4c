"""Two CPU workers as two hosts against one: the throughput of a burst of small jobs (issue 15). Writes "Workers: a
burst on one and two hosts" in bench/RESULTS.md.

    make bench-workers      # a few minutes; BENCH_BURST_JOBS=12 jobs per burst

Each host is `python -m launcher worker` with a var folder, temporary folder and storage cache of its own, sharing
only PostgreSQL, Redis and an S3-compatible object store (a moto server process), as tests/tasks/test_two_hosts.py
starts them; both serve the `cpu` queue. A burst is BENCH_BURST_JOBS quantize jobs (the default variant) of a small
TorchScript model, submitted at once through the API with fair use's slots opened wide, so the broker holds them all;
its time runs from the first submit to the last job's end (the experiments' own timestamps). The same burst runs on
host A alone, then on A and B together; the ratio is the two-host throughput over the one-host throughput.

Both hosts run on this machine. With BENCH_PIN_HOSTS=1 (the default where there are at least 2 CPUs) each host's
processes keep to a processor of their own (taskset: host A CPU 0, host B CPU 1), as two one-processor machines
would; the web side, PostgreSQL, Redis and the object store float. Unpinned, the two hosts share every processor,
which measures this machine's cores rather than the workers' scaling; both figures can be written (the section keeps
the last run of each).
"""
import os
import statistics

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bench.results import cpu_count, cpu_name, write_results
from tasks.celery import app
from tests.tasks.worker_hosts import start_host, stop_host
from tests.tasks.worker_jobs import settled
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
JOBS = int(os.environ.get("BENCH_BURST_JOBS", "12"))
TARGET = 1.7
PINNED = os.environ.get("BENCH_PIN_HOSTS", "1" if len(os.sched_getaffinity(0)) >= 2 else "0") == "1"


def _cpu(index: int) -> str:
    return str(sorted(os.sched_getaffinity(0))[index]) if PINNED else ""


def _burst(api, model_id: int) -> dict:
    ids = []
    for _ in range(JOBS):
        response = api.post("/api/experiments/", {"model": model_id, "recipe": "quantize", "device_shape": "cpu"},
                            format="json")
        assert response.status_code == 201, response.json()
        ids.append(response.json()["id"])
    for pk in ids:
        body = wait_until(lambda p=pk: settled(api, f"/api/experiments/{p}/", ("queued", "running")), timeout=900,
                          what=f"experiment {pk}")
        assert body["status"] == "succeeded", body["error"]
    runs = list(Experiment.objects.filter(pk__in=ids))
    wall = max(r.finished_at for r in runs) - min(r.created_at for r in runs)
    return {"wall_s": wall.total_seconds(), "jobs_per_min": 60 * JOBS / wall.total_seconds(),
            "job_s": statistics.median((r.finished_at - r.started_at).total_seconds() for r in runs),
            "workers": sorted({r.worker for r in runs})}


def test_a_burst_on_one_host_and_on_two(
        s3_media, object_store, alice_api, torchscript_bytes, settings, tmp_path, process_logs,
        monkeypatch):
    shared = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-burst"
    monkeypatch.setitem(app.conf, "task_default_queue", shared)
    settings.CELERY_TASK_DEFAULT_QUEUE = shared
    settings.USER_MAX_RUNNING = 1000
    env = {**object_store.env(s3_media), "SLIMFORGE_DEFAULT_QUEUE": shared, "SLIMFORGE_USER_MAX_RUNNING": "1000",
           "CUDA_VISIBLE_DEVICES": ""}
    hosts = [start_host("hosta", tmp_path / "a", env, open(process_logs / "burst-host-a.log", "wb"), _cpu(0))]
    try:
        created = alice_api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", torchscript_bytes), "name": "m",
                                                  "input_shape": "1,64"}, format="multipart").json()
        model = wait_until(lambda: settled(alice_api, f"/api/models/{created['id']}/", ("pending",)), timeout=120,
                           what="the inspection")
        one = _burst(alice_api, model["id"])
        hosts.append(start_host("hostb", tmp_path / "b", env, open(process_logs / "burst-host-b.log", "wb"), _cpu(1)))
        wait_until(lambda: "ready." in (process_logs / "burst-host-b.log").read_text(), timeout=120,
                   what="host B's worker")
        two = _burst(alice_api, model["id"])
    finally:
        for host in hosts:
            stop_host(host)
    ratio = two["jobs_per_min"] / one["jobs_per_min"]
    rows = [f"| {name} | {', '.join(r['workers'])} | {r['wall_s']:.1f} s | {r['jobs_per_min']:.1f} | "
            f"{r['job_s']:.1f} s |" for name, r in (("one host", one), ("two hosts", two))]
    body = "\n".join([
        f"Machine: {cpu_name()}, {cpu_count()} CPUs (both hosts on it, as two processes with their own disks"
        + ("; each host's processes pinned to a CPU of their own" if PINNED else "; the hosts share every CPU")
        + f"), object store: moto. A burst: {JOBS} quantize jobs of a small TorchScript model, all submitted at once.",
        "", "| hosts | workers | burst time | jobs/min | median job |", "|---|---|---|---|---|", *rows, "",
        f"Two hosts' throughput over one host's: **{ratio:.2f}x** (target >= {TARGET}x: "
        f"{'met' if ratio >= TARGET else 'not met'}).",
        "",
    ])
    print("\n" + body)
    write_results(f"Workers: a burst on one and two hosts ({'pinned' if PINNED else 'shared'} CPUs)", body)
