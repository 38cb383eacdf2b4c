"""Every page in Chromium: it loads, its scripts read the event contract the server embeds, and nothing throws."""
import pytest

from optimizers import events
from tests.browser import log_in
from tests.factories import experiment_with_artifact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def carols_experiment(carol):
    # Made before Playwright starts its event loop in this thread: an ORM connection opened inside that loop
    # belongs to another context, outlives the test, and keeps the test database from being dropped.
    experiment, _ = experiment_with_artifact(carol)
    return experiment


def test_every_page_loads_and_runs_its_scripts_without_an_error(carols_experiment, browser_page, web_server):
    experiment = carols_experiment
    errors = []
    browser_page.on("pageerror", lambda error: errors.append(f"{browser_page.url}: {error}"))
    browser_page.on("console", lambda message: errors.append(f"{browser_page.url}: {message.text}")
                    if message.type == "error" else None)
    log_in(browser_page, web_server)
    for path in ("/", "/models/", f"/models/{experiment.model_id}/", "/datasets/", "/experiments/",
                 f"/experiments/{experiment.pk}/", f"/compare/?ids={experiment.pk}", "/workers/"):
        response = browser_page.goto(f"{web_server}{path}")
        assert response.status == 200, path
        browser_page.wait_for_load_state("networkidle")
        assert browser_page.evaluate("window.SlimforgeEvents") == events.contract(), path
    assert errors == []
