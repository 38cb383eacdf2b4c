"""Choosing a device in Chromium: the experiment form offers any and the shapes live workers serve; the experiment
page says which was asked for, and why the job waits when a worker left it for one with more memory."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp import services
from webapp.models import Worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
HOUR = timedelta(hours=1)  # beats "from the future" keep both workers live however long the test takes


def test_ask_for_a_two_gpu_worker_and_see_why_the_job_waits(carol, browser_page, web_server, tmp_path, settings):
    model = ready_model(carol, name="resnet-small")
    now = timezone.now()
    for name, queues, gpus in (("cpu@a", ["cpu", settings.CELERY_TASK_DEFAULT_QUEUE], 0),
                               ("gpu-x2-0@b", ["gpu-any", "gpu-x2"], 2)):
        Worker.objects.create(name=name, host=name.split("@")[1], started_at=now, last_heartbeat=now + HOUR,
                              queues=queues, devices=[{"index": i, "name": "NVIDIA H200"} for i in range(gpus)])
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/models/{model.pk}/")
    device = browser_page.locator("#experiment-device")
    assert device.locator("option").all_inner_texts() == [
        "any: the first free worker", "cpu: a CPU worker", "gpu-x2: a worker with 2 GPUs"]
    device.select_option("gpu-x2")
    save_screenshot(browser_page, "experiment-form-device.png", tmp_path)
    browser_page.get_by_role("button", name="Start").click()
    browser_page.wait_for_url(f"{web_server}/experiments/*/")
    experiment = carol.experiments.get()
    assert experiment.device_shape == "gpu-x2"
    assert browser_page.locator("#exp-device-shape").inner_text() == "gpu-x2"

    # A worker of that shape had too little free memory for it (as tasks.placement reports it).
    services.experiment_left_for_bigger_device(
        experiment_id=experiment.pk, note="Worker gpu-x2-0@b left it for a bigger device: the job needs about "
        "30,512 MB (7,000,000,000 parameters, quantize) and it has 20,480 MB of GPU memory free. It waits for a "
        "worker with more room (or cancel it, or run it again on another device).")
    browser_page.reload()
    assert browser_page.locator("#exp-waiting").inner_text().startswith("Worker gpu-x2-0@b left it for a bigger")
    save_screenshot(browser_page, "experiment-waiting-for-room.png", tmp_path)

