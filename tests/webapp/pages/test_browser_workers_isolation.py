"""The Workers page in Chromium says which sandbox each worker runs jobs in, before and after its live refresh."""
import pytest
from django.utils import timezone

from tests.browser import log_in, save_screenshot
from webapp import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SANDBOX = "bubblewrap: no network, private file system, private PIDs, uid 65534, no capabilities, seccomp filter"


@pytest.fixture
def workers(carol):
    services.worker_heartbeat(name="cpu@box", host="box", pid=42, started_at=timezone.now(), queues=["slimforge"],
                              devices=[], load={"cpu_percent": 3, "cpu_count": 2}, isolation=SANDBOX)
    services.worker_heartbeat(name="old@box", host="box", pid=43, started_at=timezone.now(), queues=["slimforge"],
                              devices=[], load={}, isolation="none (bwrap is not installed); untrusted models refused")


def test_each_worker_says_its_sandbox(workers, browser_page, web_server, tmp_path):
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/workers/")
    rows = browser_page.locator("tr[data-worker=cpu\\@box] .isolation")
    assert rows.inner_text() == f"sandbox: {SANDBOX}"
    with browser_page.expect_response(lambda response: "/api/workers/" in response.url, timeout=15000):
        pass  # the page's live refresh rebuilds every row from the API
    browser_page.wait_for_timeout(200)
    assert rows.inner_text() == f"sandbox: {SANDBOX}"
    unsandboxed = browser_page.locator("tr[data-worker=old\\@box] .isolation")
    assert unsandboxed.inner_text().endswith("untrusted models refused")
    assert "error" in unsandboxed.get_attribute("class")  # in red: no sandbox is a problem to see at a glance
    save_screenshot(browser_page, "workers.png", tmp_path)
