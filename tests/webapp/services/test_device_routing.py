"""Queues by device shape: an experiment asks for a shape (any by default) and its job goes to that shape's queue on
the real broker; a job whose queue no live worker serves waits in the outbox, saying why, until one does; the model
page offers the shapes live workers serve."""
import base64
import json

import pytest
import redis
from django.utils import timezone

from optimizers.configs import devices
from tasks.celery import RUN_EXPERIMENT
from tests.factories import ready_model
from tests.webapp.pages.test_pages import _defaults_posted
from webapp import services
from webapp.models import OutboxMessage, UploadedModel, Worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_shape_queues(settings):
    """Other tests' worker processes share these queues' names (under the run's key prefix): start from none."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete(*(f"{settings.REDIS_PREFIX}:celery:{queue}" for queue in ("cpu", "gpu", "gpu-x2", "gpu-x4",
                                                                                 "gpu-any")))
    finally:
        client.close()


def _broker_queue(settings, queue: str) -> list[int]:
    """The experiment ids waiting in one of the broker's queues (kombu's Redis list, under the run's key prefix)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.lrange(f"{settings.REDIS_PREFIX}:celery:{queue}".encode(), 0, -1)
    finally:
        client.close()
    ids = []
    for message in raw:
        envelope = json.loads(message)
        if envelope["headers"]["task"] == RUN_EXPERIMENT:
            ids.append(json.loads(base64.b64decode(envelope["body"]))[0][0])
    return ids


def _worker(name: str, queues: list[str], gpus: int = 0) -> Worker:
    now = timezone.now()
    return Worker.objects.create(name=name, host=name.split("@")[-1], started_at=now, last_heartbeat=now,
                                 queues=queues, devices=[{"index": i, "name": "H200"} for i in range(gpus)])


def _submit(owner, model, run_callbacks, shape: str = "any", **config):
    with run_callbacks(execute=True):
        return services.experiment_create(owner=owner, model=model, recipe="quantize", config=config,
                                          device_shape=shape)


def test_shape_names_follow_the_gpu_count():
    assert [devices.shape_of(n) for n in (0, 1, 2, 8)] == ["cpu", "gpu", "gpu-x2", "gpu-x8"]
    assert [devices.gpus_of(s) for s in ("cpu", "gpu", "gpu-x2", "gpu-x64")] == [0, 1, 2, 64]
    for wrong in ("gpu-x1", "gpu-x0", "gpu-x02", "gpu-x65", "gpux2", "GPU", "any", "tpu"):
        assert devices.gpus_of(wrong) is None, wrong


def test_each_experiment_goes_to_its_shapes_queue(alice, settings, django_capture_on_commit_callbacks):
    settings.USER_MAX_RUNNING = 10
    # A shared queue of this test's own: the run's worker, when a test before this one started it, would take the
    # "any" job out of the run's shared queue before it is read.
    settings.CELERY_TASK_DEFAULT_QUEUE += "-routing"
    model = ready_model(alice)
    _worker("cpu@a", ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE])
    _worker("gpu-x2-0@b", ["gpu-x2", "gpu-any", settings.CELERY_TASK_DEFAULT_QUEUE], gpus=2)
    anywhere = _submit(alice, model, django_capture_on_commit_callbacks)
    on_cpu = _submit(alice, model, django_capture_on_commit_callbacks, "cpu")
    on_two = _submit(alice, model, django_capture_on_commit_callbacks, "gpu-x2")
    any_gpu = _submit(alice, model, django_capture_on_commit_callbacks, variant="fp8_cuda")
    assert not OutboxMessage.objects.filter(owner=alice).exists()
    assert anywhere.pk in _broker_queue(settings, settings.CELERY_TASK_DEFAULT_QUEUE)
    assert _broker_queue(settings, "cpu") == [on_cpu.pk]
    assert _broker_queue(settings, "gpu-x2") == [on_two.pk]
    assert _broker_queue(settings, "gpu-any") == [any_gpu.pk]


def test_a_shape_no_live_worker_serves_waits_saying_so(alice, alice_api, settings,
                                                       django_capture_on_commit_callbacks):
    model = ready_model(alice)
    _worker("gpu-0@a", ["gpu", "gpu-any", settings.CELERY_TASK_DEFAULT_QUEUE], gpus=1)
    waiting = _submit(alice, model, django_capture_on_commit_callbacks, "gpu-x4")
    assert list(OutboxMessage.objects.values_list("object_id", flat=True)) == [waiting.pk]
    body = alice_api.get(f"/api/experiments/{waiting.pk}/").json()
    assert body["device_shape"] == "gpu-x4"
    assert body["waiting"].startswith("Waiting for a worker of the shape it asks for (gpu-x4): none is online.")

    _worker("gpu-x4-0@b", ["gpu-x4", "gpu-any"], gpus=4)
    assert services.outbox_send() == 1
    assert _broker_queue(settings, "gpu-x4") == [waiting.pk]
    assert alice_api.get(f"/api/experiments/{waiting.pk}/").json()["waiting"] == ""


def test_an_impossible_shape_is_refused_by_name(alice, alice_api):
    model = ready_model(alice)
    for shape, words in (("gpu-x1", "Unknown device 'gpu-x1'"), ("../cpu", "Unknown device"),
                         (7, "Give it as text")):
        response = alice_api.post("/api/experiments/", {"model": model.pk, "recipe": "quantize",
                                                        "device_shape": shape}, format="json")
        assert response.status_code == 400 and words in str(response.json()["device_shape"]), response.json()
    response = alice_api.post("/api/experiments/", {"model": model.pk, "recipe": "quantize", "device_shape": "cpu",
                                                    "config": {"variant": "fp8_cuda"}}, format="json")
    assert response.status_code == 400
    assert "variant fp8_cuda runs on a CUDA GPU" in response.json()["device_shape"][0]
    assert not OutboxMessage.objects.exists()


def test_the_form_offers_the_shapes_live_workers_serve_and_a_rerun_keeps_its_own(alice, client, settings,
                                                                               django_capture_on_commit_callbacks):
    model = ready_model(alice)
    _worker("cpu@a", ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE])
    _worker("gpu-x2-0@b", ["gpu-x2", "gpu-any"], gpus=2)
    stopped = _worker("gpu-x8-0@c", ["gpu-x8", "gpu-any"], gpus=8)
    Worker.objects.filter(pk=stopped.pk).update(stopped_at=timezone.now())
    client.force_login(alice)
    page = client.get(f"/models/{model.pk}/").content.decode()
    assert '<option value="any" selected>any: the first free worker</option>' in page
    assert '<option value="cpu">cpu: a CPU worker</option>' in page
    assert '<option value="gpu-x2">gpu-x2: a worker with 2 GPUs</option>' in page
    assert "gpu-x8" not in page

    response = client.post(f"/models/{model.pk}/experiments/", {**_defaults_posted("quantize"),
                                                                "device_shape": "gpu-x2"})
    experiment = alice.experiments.get()
    assert response.status_code == 302 and experiment.device_shape == "gpu-x2"
    assert "asked for <span id=\"exp-device-shape\">gpu-x2</span>" in client.get(response.url).content.decode()
    Worker.objects.filter(name="gpu-x2-0@b").update(stopped_at=timezone.now())
    rerun = client.get(f"/experiments/{experiment.pk}/rerun/").content.decode()
    assert '<option value="gpu-x2" selected>gpu-x2: a worker with 2 GPUs (none online now: it waits)</option>' in rerun


def test_a_job_left_for_a_bigger_device_says_when_no_live_worker_is_big_enough(alice, alice_api, settings,
                                                                              django_capture_on_commit_callbacks):
    model = ready_model(alice)
    UploadedModel.objects.filter(pk=model.pk).update(params=30_000_000_000)  # about 30 B parameters: 280 GB in fp32
    h100 = _worker("gpu-0@a", ["gpu", "gpu-any"], gpus=1)
    Worker.objects.filter(pk=h100.pk).update(devices=[{"index": 0, "name": "H100", "memory_mb": 81_559}])
    job = _submit(alice, model, django_capture_on_commit_callbacks, "gpu")
    services.experiment_left_for_bigger_device(experiment_id=job.pk, note="Worker gpu-0@a left it for a bigger "
                                               "device: the job needs about 286,000 MB.")
    waiting = alice_api.get(f"/api/experiments/{job.pk}/").json()["waiting"]
    assert waiting == ("Worker gpu-0@a left it for a bigger device: the job needs about 286,000 MB. No live worker "
                       "that serves gpu has that much: the largest has 81,559 MB, so it runs only once a bigger one "
                       "joins.")

    # A CPU worker's size is its machine's memory, which its heartbeat reports.
    UploadedModel.objects.filter(pk=model.pk).update(params=1_000_000)
    small = _submit(alice, model, django_capture_on_commit_callbacks, "cpu")
    Worker.objects.filter(pk=_worker("cpu@b", ["cpu"]).pk).update(load={"memory_total_mb": 24_000})
    services.experiment_left_for_bigger_device(experiment_id=small.pk, note="Worker cpu@b left it.")
    assert alice_api.get(f"/api/experiments/{small.pk}/").json()["waiting"] == "Worker cpu@b left it."
