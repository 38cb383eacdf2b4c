"""A chain from the browser: the form on a model's page, the chain's page following its steps live until the
first-vs-final table, and the lineage on the page of a model a step made."""
import json

import pytest

from tests.browser import log_in, save_screenshot
from tests.conftest import _api_client_for
from tests.tasks.worker_jobs import model_and_digits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_chain_from_the_form_to_the_final_model(carol, browser_page, web_server, celery_worker, tmp_path):
    model, digits = model_and_digits(_api_client_for(carol), tmp_path)
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/models/{model['id']}/")
    browser_page.locator("#new-chain").click()
    form = browser_page.locator("#chain-form")
    form.locator("input[name=name]").fill("slim the mlp")
    settings = [{"method": "unstructured", "agp_steps": 1, "epochs": 1},
                {"student": "thinner_copy", "epochs": 1, "compare_without_teacher": False}]
    for index, config in enumerate(settings):
        form.locator(f"select[name=step-{index}-dataset]").select_option(str(digits["id"]))
        form.locator(f"textarea[name=step-{index}-config]").fill(json.dumps(config))
    save_screenshot(browser_page, "chain-form.png", tmp_path)
    form.get_by_role("button", name="Start the chain").click()
    browser_page.wait_for_url(f"{web_server}/chains/*/")
    assert browser_page.locator("#chain-status").inner_text() == "running"
    save_screenshot(browser_page, "chain-running.png", tmp_path)

    browser_page.wait_for_function("() => document.getElementById('chain-status').textContent === 'succeeded'",
                                   timeout=300_000)
    steps = browser_page.locator("#chain-steps tbody tr")
    assert steps.count() == 3
    for i in range(3):
        assert steps.nth(i).locator("[data-field=status]").inner_text() == "succeeded"
    table = browser_page.locator("#first-vs-final")
    assert table.is_visible() and "file size" in table.inner_text()
    save_screenshot(browser_page, "chain-succeeded.png", tmp_path)

    steps.nth(2).locator("[data-field=output] a").click()
    lineage = browser_page.locator("#lineage").inner_text()
    assert "quantize #" in lineage and "step 3 of chain #" in lineage
    save_screenshot(browser_page, "model-lineage.png", tmp_path)

    browser_page.goto(f"{web_server}/chains/")
    assert "slim the mlp" in browser_page.locator("#chain-table").inner_text()
    save_screenshot(browser_page, "chain-list.png", tmp_path)
