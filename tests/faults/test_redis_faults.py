"""Redis faults with real processes, on a stack of the test's own (tests/faults/stack.py): the broker unreachable
when a job is submitted (an outbox swept by the heartbeats sends it once Redis is back), and Redis killed and started
again, empty, in the middle of a job (the job finishes; its open page reconnects and fills the gap)."""
import time

import pytest

from tests.browser import log_in, save_screenshot
from tests.faults.jobs import finished, get, model_and_digits
from tests.faults.stack import own_stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


@pytest.fixture
def stack(tmp_path):
    own = own_stack(tmp_path / "stack")
    try:
        own.start()
        yield own
    finally:
        own.stop()


def test_a_job_submitted_while_the_broker_is_down_is_sent_once_it_is_back(stack, tmp_path):
    api = stack.user("alice")
    model, _ = model_and_digits(api, stack.url, tmp_path)
    stack.redis.stop()

    began = time.monotonic()
    response = api.post(f"{stack.url}/api/experiments/", json={"model": model["id"], "recipe": "quantize",
                                                                "config": {"variant": "dynamic_int8"}}, timeout=60)
    answered_in = time.monotonic() - began
    assert response.status_code == 201, response.text
    body = response.json()
    # A clear answer, quickly: saved, and sent when the queue is back.
    assert body["status"] == "queued" and answered_in < 10
    assert body["waiting"].startswith("The job queue is unreachable right now; the experiment is saved"), body
    url = f"{stack.url}/api/experiments/{body['id']}/"
    time.sleep(3)  # the workers' sweeps try meanwhile, and fail as well: nothing is lost
    assert get(api, url)["status"] == "queued"

    stack.redis.start()
    done = finished(api, url, timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 1 and done["waiting"] == ""


@pytest.mark.browser
def test_a_job_and_its_open_page_live_through_a_redis_restart(stack, carol, browser_page, tmp_path):
    api = stack.user("carol", "carol-secret-pw")  # as tests.browser.log_in signs in
    model, digits = model_and_digits(api, stack.url, tmp_path)
    response = api.post(f"{stack.url}/api/experiments/", timeout=30, json={
        "model": model["id"], "recipe": "prune", "dataset": digits["id"],
        "config": {"method": "unstructured", "agp_steps": 1, "epochs": 60, "early_stopping_patience": 0}})
    assert response.status_code == 201, response.text
    experiment_id = response.json()["id"]
    url = f"{stack.url}/api/experiments/{experiment_id}/"

    log_in(browser_page, stack.url)
    browser_page.goto(f"{stack.url}/experiments/{experiment_id}/")
    browser_page.wait_for_function("() => Number(document.getElementById('chart').dataset.lastSeq) > 20",
                                   timeout=120_000)
    stack.redis.stop()  # killed, and it comes back empty: no groups, no queues, no unacknowledged message
    time.sleep(3)
    stack.redis.start()

    done = finished(api, url, timeout=300)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 1  # the job was not run again
    # The page saw the end, and every event: its last seq is the experiment's last.
    browser_page.wait_for_function("() => document.getElementById('exp-status').textContent === 'succeeded'",
                                   timeout=60_000)
    wait_until(lambda: browser_page.evaluate("() => Number(document.getElementById('chart').dataset.lastSeq)")
               == done["last_seq"], timeout=30, what="the page to hold every event")
    save_screenshot(browser_page, "experiment-after-redis-restart.png", tmp_path)
