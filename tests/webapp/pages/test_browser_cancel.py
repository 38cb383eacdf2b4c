"""Cancel from the list in Chromium: the button, the message, the row's new status; and the running job's page."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_cancel_a_queued_run_from_the_list_and_see_a_running_one_stopping(carol, browser_page, web_server, tmp_path):
    model = ready_model(carol, name="resnet-small")
    queued = Experiment.objects.create(owner=carol, model=model, recipe="quantize", config={"variant": "dynamic_int8"})
    running = Experiment.objects.create(owner=carol, model=model, recipe="prune", config={"method": "unstructured"})
    services.experiment_claim(experiment_id=running.pk, worker="cpu@box")
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/")
    row = browser_page.locator(f"tr[data-id='{queued.pk}']")
    row.get_by_role("button", name=f"cancel experiment #{queued.pk}").click()
    browser_page.wait_for_url(f"{web_server}/experiments/")
    assert browser_page.locator("#messages").inner_text() == f"Experiment #{queued.pk} is cancelled."
    assert row.locator("[data-role=status]").inner_text() == "cancelled"
    assert row.locator("[data-role=cancel]").count() == 0  # nothing left to cancel
    assert browser_page.locator(f"tr[data-id='{running.pk}'] [data-role=cancel]").count() == 1
    save_screenshot(browser_page, "experiments-cancel.png", tmp_path)

    browser_page.goto(f"{web_server}/experiments/{running.pk}/")
    browser_page.get_by_role("button", name=f"cancel experiment #{running.pk}").click()
    browser_page.wait_for_url(f"{web_server}/experiments/{running.pk}/")
    assert browser_page.locator("#messages").inner_text() == f"Experiment #{running.pk} is stopping at its next step."
    assert "Cancel requested by carol" in browser_page.locator("#exp-cancel-state").inner_text()
    assert browser_page.locator("#experiment [data-role=cancel]").count() == 0
    services.experiment_finish(experiment_id=running.pk, status="cancelled")  # as the worker ends it
    browser_page.wait_for_function("() => document.getElementById('exp-status').textContent === 'cancelled'",
                                   timeout=15000)
    assert browser_page.locator("#exp-cancel-state").inner_text() == "Cancelled by carol."
    save_screenshot(browser_page, "experiment-cancelled.png", tmp_path)
