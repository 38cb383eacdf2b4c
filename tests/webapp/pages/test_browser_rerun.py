"""Run again with edits in Chromium: from a finished run's page to its filled form, one setting changed, started,
and the new run's page saying what differs."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp import services
from webapp.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_run_again_with_one_setting_changed(carol, browser_page, web_server, tmp_path):
    source = services.experiment_create(owner=carol, model=ready_model(carol, name="digits-mlp"), recipe="quantize",
                                        config={"variant": "dynamic_int8"}, telemetry_interval_s=0.5)
    services.experiment_claim(experiment_id=source.pk, worker="cpu@box")
    services.experiment_finish(experiment_id=source.pk, status="succeeded", summary={"after": {}})
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/{source.pk}/")
    browser_page.click("#rerun-link")
    browser_page.wait_for_url(f"{web_server}/experiments/{source.pk}/rerun/")
    assert f"Running quantize #{source.pk} again" in browser_page.locator("#rerun-note").inner_text()
    assert browser_page.locator("#recipe").input_value() == "quantize"
    assert browser_page.locator("#telemetry-interval").input_value() == "0.5"
    browser_page.fill("#telemetry-interval", "1.5")
    save_screenshot(browser_page, "experiment-rerun-form.png", tmp_path)
    browser_page.click("#experiment-form button[type=submit]")
    rerun = Experiment.objects.exclude(pk=source.pk)
    browser_page.wait_for_url(f"{web_server}/experiments/*/")
    assert rerun.get().rerun_of_id == source.pk
    assert f"A re-run of quantize #{source.pk}" in browser_page.locator("#rerun-of").inner_text()
    rows = browser_page.locator("#rerun-of table.changes tbody tr")
    assert rows.count() == 1 and rows.first.inner_text().split("\t") == ["telemetry interval (s)", "0.5", "1.5"]
    save_screenshot(browser_page, "experiment-rerun.png", tmp_path)


def test_name_notes_and_tags_in_the_folded_form(carol, browser_page, web_server, tmp_path):
    source = services.experiment_create(owner=carol, model=ready_model(carol, name="digits-mlp"), recipe="quantize",
                                        config={"variant": "dynamic_int8"})
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/{source.pk}/")
    browser_page.click("details.labels summary")
    browser_page.fill(".labels-form input[name=name]", "first int8 try")
    browser_page.fill(".labels-form input[name=tags]", "baseline, int8")
    browser_page.fill(".labels-form textarea[name=notes]", "Per-channel scales; compare with the static run.")
    browser_page.click(".labels-form button[type=submit]")
    browser_page.wait_for_selector("#messages")
    assert browser_page.locator("#exp-name").inner_text() == "first int8 try"
    assert browser_page.locator("[data-role=tags] .tag").all_inner_texts() == ["baseline", "int8"]
    save_screenshot(browser_page, "experiment-labels.png", tmp_path)
    browser_page.goto(f"{web_server}/experiments/?q=baseline")
    assert browser_page.locator("#experiment-table tbody tr").count() == 1
