"""The Workers page: login, the same privacy as the API, and a table that follows a real worker by itself."""
import os
import signal
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests import processes
from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from tests.waiting import wait_until
from webapp import services
from webapp.models import Experiment, Worker

GPU = {"index": 1, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}


def _beat(name: str, devices=()) -> None:
    services.worker_heartbeat(name=name, host="box", pid=7, started_at=timezone.now(), queues=["gpu1", "cpu"],
                              devices=list(devices), load={"cpu_percent": 37.0, "memory_percent": 41.0,
                                                           "loadavg_1m": 1.25, "rss_mb": 512.0, "cpu_count": 16})


def _alices_running_job(alice) -> Experiment:
    return Experiment.objects.create(owner=alice, model=ready_model(alice, name="alices-secret-resnet"),
                                     recipe="prune", status=Experiment.Status.RUNNING, worker="gpu1@box",
                                     progress=0.5, started_at=timezone.now())


@pytest.mark.django_db
def test_the_page_needs_login(client):
    response = client.get("/workers/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_page_lists_workers_with_state_devices_and_load(alice, client):
    _beat("gpu1@box", devices=[GPU])
    _beat("cpu@box")
    Worker.objects.filter(name="cpu@box").update(last_heartbeat=timezone.now() - timedelta(minutes=3))
    client.force_login(alice)
    page = client.get("/workers/").content.decode()
    assert 'href="/workers/"' in page  # the nav link
    assert '<span class="status online">online</span>' in page and '<span class="status offline">offline</span>' in page
    assert "GPU 1: NVIDIA H100 80GB HBM3 (81559 MB)" in page and "none (CPU only)" in page
    assert "3 min ago" in page and "CPU 37% of 16" in page and "gpu1, cpu" in page
    assert 'data-api="/api/workers/"' in page and "js/workers.js" in page


@pytest.mark.django_db
def test_alice_gets_a_link_to_her_job_and_bob_only_busy(alice, bob, client):
    experiment = _alices_running_job(alice)
    _beat("gpu1@box")
    client.force_login(alice)
    alices = client.get("/workers/").content.decode()
    assert f'<a href="/experiments/{experiment.pk}/">prune #{experiment.pk}</a>' in alices
    assert "alices-secret-resnet · 50%" in alices

    client.force_login(bob)
    bobs = client.get("/workers/").content.decode()
    assert "busy (another user's job)" in bobs
    assert "alices-secret-resnet" not in bobs and f"/experiments/{experiment.pk}/" not in bobs


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_table_follows_a_real_worker_without_a_reload(web_server, browser_page, process_logs):
    node = f"watched-{uuid.uuid4().hex[:8]}"
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-{node}"
    worker = processes.start_worker(process_logs / f"{node}.log", queue=queue, node=f"{node}@%h")
    page = browser_page
    try:
        log_in(page, web_server)
        page.goto(f"{web_server}/workers/")
        page.evaluate("window.sameDocument = true")
        row = f"tr[data-worker^='{node}@']"
        page.wait_for_selector(f"{row} .status.online", timeout=30_000)
        assert queue in page.text_content(row) and "idle" in page.text_content(f"{row} td.job")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        page.wait_for_selector(f"{row} .status.offline", timeout=15_000)
    finally:
        processes.stop(worker)
    assert page.evaluate("window.sameDocument === true")  # workers.js redrew it; the page never reloaded
    assert page.text_content(f"{row} td.heartbeat").strip().endswith("s ago")


@pytest.mark.django_db
def test_a_worker_that_takes_multi_host_jobs_shows_its_address(alice, client):
    _beat("gpu1@box")
    services.worker_heartbeat(name="cpu@other", host="other", pid=8, started_at=timezone.now(), queues=["cpu"],
                              devices=[], load={"cpu_percent": 5.0, "memory_percent": 20.0, "loadavg_1m": 0.5,
                                                "rss_mb": 300.0, "cpu_count": 8, "host_address": "10.0.0.5"})
    client.force_login(alice)
    page = client.get("/workers/").content.decode()
    expected = '<small class="hint multi-host">multi-host at 10.0.0.5: those jobs run with the host network</small>'
    assert page.count("multi-host at") == 1 and expected in page


@pytest.mark.django_db
def test_a_further_host_shows_the_job_it_lends_its_devices_to(alice, bob, client, alice_api, bob_api):
    """A further host of a multi-host job runs none of its own (Worker.hosting, from its join task): its owner sees
    which job it lends its devices to, in the page and the API; anyone else sees it busy, never idle."""
    experiment = _alices_running_job(alice)
    services.worker_heartbeat(name="cpu@other", host="other", pid=8, started_at=timezone.now(), queues=["cpu"],
                              devices=[], load={"host_address": "10.0.0.6"}, hosting=[experiment.pk])
    client.force_login(alice)
    alices = client.get("/workers/").content.decode()
    assert f'lends its devices to <a href="/experiments/{experiment.pk}/">prune #{experiment.pk}</a>' in alices
    [row] = alice_api.get("/api/workers/").json()
    assert row["current_job"]["id"] == experiment.pk and row["current_job"]["lends"] is True
    client.force_login(bob)
    bobs = client.get("/workers/").content.decode()
    assert "busy (another user's job)" in bobs and "alices-secret-resnet" not in bobs and "lends" not in bobs
    assert bob_api.get("/api/workers/").json()[0]["current_job"] == {"busy": True}

    Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.SUCCEEDED)
    client.force_login(alice)
    assert "idle" in client.get("/workers/").content.decode()  # the job ended: a stale beat lends to nothing
    services.worker_stopped(name="cpu@other")
    assert Worker.objects.get(name="cpu@other").hosting == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_live_table_shows_a_further_host_lending_its_devices(web_server, browser_page, carol, tmp_path):
    """workers.js redraws a further host's row as the job it lends its devices to, as the server renders it."""
    experiment = Experiment.objects.create(owner=carol, model=ready_model(carol, name="carols-resnet"),
                                           recipe="distill", status=Experiment.Status.RUNNING, worker="cpu@first",
                                           progress=0.25, started_at=timezone.now(), hosts=2, device_shape="cpu")
    for name, address in (("cpu@first", "10.0.0.5"), ("cpu@second", "10.0.0.6")):
        services.worker_heartbeat(name=name, host=name.split("@")[1], pid=8, started_at=timezone.now(),
                                  queues=["cpu"], devices=[], isolation="bubblewrap",
                                  load={"cpu_percent": 93.0, "memory_percent": 20.0, "loadavg_1m": 1.9,
                                        "rss_mb": 900.0, "cpu_count": 8, "host_address": address},
                                  hosting=[experiment.pk] if name == "cpu@second" else [])
    # No worker process beats here: keep both rows fresh for the test's few seconds (the test offline window is short).
    Worker.objects.update(last_heartbeat=timezone.now() + timedelta(minutes=5))
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/workers/")
    # Blank the server's render: what shows next is workers.js's redraw from the API.
    page.evaluate("document.querySelectorAll('td.job').forEach((cell) => { cell.textContent = ''; })")
    expected = f"lends its devices to distill #{experiment.pk} · carols-resnet · 25%"
    wait_until(lambda: page.text_content("tr[data-worker='cpu@second'] td.job").strip(), timeout=10,
               what="workers.js's redraw")
    assert page.text_content("tr[data-worker='cpu@second'] td.job").strip() == expected
    assert page.text_content("tr[data-worker='cpu@first'] td.job").strip() == (
        f"distill #{experiment.pk} · carols-resnet · 25%")
    save_screenshot(page, "workers-multi-host.png", tmp_path)
