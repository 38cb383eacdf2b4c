"""Two worker machines, as `python -m launcher worker` starts them on two hosts: separate processes with separate
var folders, temporary folders and storage caches, sharing only the database, Redis and an S3-compatible object store
(a real moto server process). Host A has no GPU (its worker serves `cpu`); host B is given one GPU through
CUDA_VISIBLE_DEVICES (its worker serves `gpu` and `gpu-any`; this machine has no GPU, so its jobs run on the CPU,
which is all a routing test needs). Each takes only its own shape's jobs; host B's jobs wait until it joins, then
it takes them; each reads the model from the bucket once into its own cache; the results come back through the bucket
to the owner's download; a host that leaves is marked so."""
import hashlib
import io

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from tasks.celery import app
from tests import processes
from tests.modelfiles import linear_model
from tests.tasks.worker_hosts import celery_devices, start_host, stop_host
from tests.tasks.worker_jobs import settled
from tests.waiting import wait_until
from webapp.models import Artifact, UploadedModel, Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def _submit(api, model_id: int, shape: str) -> str:
    response = api.post("/api/experiments/", {"model": model_id, "recipe": "quantize", "device_shape": shape},
                        format="json")
    assert response.status_code == 201, response.json()
    return f"/api/experiments/{response.json()['id']}/"


def test_two_hosts_each_take_their_shapes_jobs_and_a_late_one_takes_what_waited(
        s3_media, object_store, alice_api, torchscript_bytes, settings, tmp_path, process_logs,
        monkeypatch):
    shared = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-hosts"  # this test's shared queue: its hosts only
    monkeypatch.setitem(app.conf, "task_default_queue", shared)
    settings.CELERY_TASK_DEFAULT_QUEUE = shared
    settings.USER_MAX_RUNNING = 4
    env = {**object_store.env(s3_media), "SLIMFORGE_DEFAULT_QUEUE": shared, "SLIMFORGE_USER_MAX_RUNNING": "4"}
    hosts = []
    try:
        hosts.append(start_host("hosta", tmp_path / "a", env | {"CUDA_VISIBLE_DEVICES": ""},
                           open(process_logs / "host-a.log", "wb")))
        created = alice_api.post("/api/models/", {"file": SimpleUploadedFile("m.pt", torchscript_bytes), "name": "m",
                                                  "input_shape": "1,64"}, format="multipart").json()
        model = wait_until(lambda: settled(alice_api, f"/api/models/{created['id']}/", ("pending",)), timeout=120,
                           what="the inspection on host A")
        assert model["status"] == "ready", model["error"]
        on_cpu, on_gpu = [_submit(alice_api, model["id"], "cpu")], [_submit(alice_api, model["id"], "gpu")]
        for url in on_gpu:  # nobody serves gpu yet: they wait, saying so
            assert "Waiting for a worker of the shape it asks for (gpu)" in alice_api.get(url).json()["waiting"]
        done = [wait_until(lambda u=url: settled(alice_api, u, ("queued", "running")), timeout=180,
                           what="host A's jobs") for url in on_cpu]
        assert [(e["status"], e["worker"]) for e in done] == [("succeeded", "cpu@hosta")]
        assert all(alice_api.get(url).json()["status"] == "queued" for url in on_gpu)

        hosts.append(start_host("hostb", tmp_path / "b", env | {"CUDA_VISIBLE_DEVICES": "0"},
                           open(process_logs / "host-b.log", "wb")))
        done = [wait_until(lambda u=url: settled(alice_api, u, ("queued", "running")), timeout=180,
                           what="host B's jobs") for url in on_gpu]
        assert [(e["status"], e["worker"]) for e in done] == [("succeeded", "gpu-0@hostb")]
        queues = dict(Worker.objects.filter(name__in=["cpu@hosta", "gpu-0@hostb"]).values_list("name", "queues"))
        assert queues == {"cpu@hosta": sorted(["cpu", shared]), "gpu-0@hostb": sorted(["gpu", "gpu-any", shared])}
        # Each host's Celery worker was started with its own GPUs (none: an empty list hides them all).
        assert [celery_devices(host) for host in hosts] == [{"cpu@hosta": ""}, {"gpu-0@hostb": "0"}]
    finally:
        for host in hosts:
            stop_host(host)
    # The result came back through the bucket: the owner's download is the stored object, and it runs.
    artifact = next(a for a in done[0]["artifacts"] if a["name"] == "model.pt")
    content = b"".join(alice_api.get(artifact["url"]).streaming_content)
    stored = Artifact.objects.get(pk=artifact["id"])
    kept = object_store.client().get_object(Bucket=object_store.bucket, Key=f"{s3_media}/{stored.file.name}")
    assert content == kept["Body"].read() and hashlib.sha256(content).hexdigest() == stored.sha256
    x = torch.randn(4, 64)
    with torch.inference_mode():
        expected = linear_model()(x)
        assert torch.allclose(torch.jit.load(io.BytesIO(content))(x), expected, atol=0.05 * expected.abs().max())
    # Each host read the model from the bucket once, into its own cache (host A's job took the copy its inspection
    # had made); neither wrote a media folder, nor did the web side.
    upload = UploadedModel.objects.get(pk=model["id"])
    assert object_store.downloads_of(f"{s3_media}/{upload.file.name}") == 2
    assert "came from the worker's cache" in (process_logs / "host-a.log").read_text()
    for host in ("a", "b"):
        assert [path.name for path in (tmp_path / host / "cache").iterdir()] == [upload.sha256]
        assert not (tmp_path / host / "var" / "media").exists()
    assert not settings.MEDIA_ROOT.exists()
    # A host that leaves is marked stopped (one that dies goes offline after missed beats: the fault tests).
    assert all(row.stopped_at for row in Worker.objects.filter(name__in=["cpu@hosta", "gpu-0@hostb"]))
    processes.wait_for_database_sessions_to_end()
