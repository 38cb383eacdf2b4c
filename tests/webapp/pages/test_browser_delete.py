"""Delete from the list in Chromium: tick two runs, answer the question, and they are gone with a message; a
dismissed question deletes nothing."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import experiment_with_artifact
from webapp.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_delete_the_ticked_experiments(carol, browser_page, web_server, tmp_path):
    doomed = [experiment_with_artifact(carol)[0] for _ in range(2)]
    kept, _ = experiment_with_artifact(carol)
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/")
    assert browser_page.locator("#delete-button").is_disabled()  # nothing ticked yet
    for experiment in doomed:
        browser_page.check(f"input[name=ids][value='{experiment.pk}']")
    questions = []
    browser_page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    browser_page.click("#delete-button")
    browser_page.wait_for_timeout(300)
    assert questions == ["Delete the ticked experiments with their artifacts? This cannot be undone."]
    assert Experiment.objects.count() == 3  # dismissed: nothing happened
    browser_page.once("dialog", lambda dialog: dialog.accept())
    browser_page.click("#delete-button")
    browser_page.wait_for_selector("#messages")
    assert browser_page.locator("#messages").inner_text() == "Deleted 2 experiments, with their files."
    assert list(Experiment.objects.values_list("pk", flat=True)) == [kept.pk]
    assert browser_page.locator("#experiment-table tbody tr").count() == 1
    save_screenshot(browser_page, "experiments-deleted.png", tmp_path)
