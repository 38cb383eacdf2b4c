"""The pages' JavaScript reads the event names from the one Python definition, never its own spelling of them."""
import json
import re

import pytest

from optimizers import events
from tests.factories import experiment_with_artifact
from tests.paths import REPO_ROOT
from webapp.models import Experiment

pytestmark = pytest.mark.django_db
SCRIPTS = sorted((REPO_ROOT / "static" / "js").glob("*.js"))


def embedded_contract(page: str) -> dict:
    found = re.search(r'<script id="event-contract" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the page embeds no event contract"
    return json.loads(found.group(1))


@pytest.mark.parametrize("path", ["/experiments/", "/models/", "/workers/"])
def test_every_page_embeds_the_contract_before_its_scripts(alice, client, path):
    client.force_login(alice)
    page = client.get(path).content.decode()
    assert embedded_contract(page) == events.contract()
    assert page.index('id="event-contract"') < page.index("js/events.js")


def test_the_experiment_page_reads_it_before_its_charts(alice, client):
    experiment, _ = experiment_with_artifact(alice)
    client.force_login(alice)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert embedded_contract(page) == events.contract()
    assert page.index("js/events.js") < page.index("js/experiment-charts.js") < page.index("js/experiment.js")


def test_model_statuses_are_the_status_events_vocabulary():
    assert tuple(Experiment.Status.values) == events.STATUSES
    assert Experiment.FINISHED == events.FINISHED


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_spells_an_event_kind_or_a_status_itself(script):
    names = "|".join(events.KINDS + events.STATUSES)
    spelled = re.findall(rf"""(?:kind|status|name)\s*===?\s*["']({names})["']|\[\s*["']({names})["']""",
                         script.read_text())
    assert not spelled, f"{script.name} spells {spelled}: read SlimforgeEvents instead"
