"""The experiment page as its user reads it (issue 13): who ran it, when, how long, where, on which data and how that
data was adapted, the settings as a table against the defaults, the stages with their durations, ratios coloured
by which way is better with explanations, and a failed run that looks finished with its reason first."""
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp import services
from webapp.models import Dataset, Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORT = {"size_bytes": 40_000, "params": 1000, "latency_ms": {"batch_1": {"p50": 2.0, "p95": 3.0}},
          "accuracy": 0.90, "agreement_top1": 1.0, "output_error": {"max_abs": 0.0, "sqnr_db": None, "identical": True}}
AFTER = {"size_bytes": 10_000, "params": 1000, "latency_ms": {"batch_1": {"p50": 3.0, "p95": 4.0}},
         "accuracy": 0.89, "agreement_top1": 0.97, "output_error": {"max_abs": 0.2, "sqnr_db": -2.9}}


@pytest.fixture
def carols_runs(carol):
    model = ready_model(carol)
    model.input_shape = [1, 1, 8, 8]
    model.save(update_fields=["input_shape"])
    dataset = Dataset.objects.create(owner=carol, name="cifar-like", kind="npz", status="ready",
                                     info={"samples": 120, "sample_shape": [3, 32, 32]})
    now = timezone.now()
    done = Experiment.objects.create(
        owner=carol, model=model, dataset=dataset, recipe="prune", status=Experiment.Status.SUCCEEDED, progress=1.0,
        config={"method": "structured", "target_macs_ratio": 0.4}, worker="celery@gpu-host-7",
        started_at=now - timedelta(seconds=125), finished_at=now,
        summary={"before": REPORT, "after": AFTER, "backend": "torch-pruning", "device": "cpu", "notes": [],
                 "extras": {}})
    t0 = time.time() - 200
    services.events_record(experiment_id=done.pk, records=[
        {"t": t0, "kind": "stage", "name": "load"}, {"t": t0 + 5, "kind": "stage", "name": "prune"},
        {"t": t0 + 95, "kind": "stage", "name": "save"},
        *({"t": t0 + i, "kind": "resource", "name": "job/cpu_percent", "value": 50.0} for i in range(0, 100, 5)),
    ])
    failed = Experiment.objects.create(owner=carol, model=model, recipe="quantize", status=Experiment.Status.FAILED,
                                       progress=0.4, error="the model rejected an input of shape [1,3,8,8]",
                                       started_at=now - timedelta(seconds=3), finished_at=now)
    return done, failed


def test_the_page_says_who_when_where_on_what_and_how_the_numbers_compare(carols_runs, browser_page, web_server,
                                                                         tmp_path):
    done, failed = carols_runs
    try:
        page = browser_page
        log_in(page, web_server)
        page.goto(f"{web_server}/experiments/{done.pk}/")
        facts = page.locator("#exp-facts")
        assert "carol" in facts.text_content()
        assert page.locator("#exp-duration").text_content().strip().startswith("ran 2 min 05 s")
        assert "celery@gpu-host-7" in page.locator("#exp-worker").text_content()
        # The dataset's 3x32x32 samples are resized for this 1x8x8 model: said before anyone reads the accuracy.
        fit = page.locator("#exp-data-fit").text_content()
        assert "3 channels averaged to 1" in fit and "from 32x32 to 8x8" in fit

        # Settings as a table: words, not a dict repr; what differs from the defaults marked.
        settings = page.locator("#exp-settings")
        assert "{" not in settings.text_content() and "True" not in settings.text_content()
        changed = page.locator("#exp-settings tr.changed").evaluate_all("rows => rows.map(r => r.dataset.key)")
        assert "target_macs_ratio" in changed and "method" in changed
        assert "changed" in page.locator("#exp-settings tr[data-key=target_macs_ratio]").text_content()

        # Stages with how long each took: up to the next one, the last to the latest event.
        page.wait_for_selector("#stage-times:not([hidden])")
        rows = page.locator("#stage-times tbody tr").all_inner_texts()
        assert [r.split("\t")[0] for r in rows] == ["load", "prune", "save"]
        assert rows[1].split("\t")[2] == "90.0 s"

        # Ratios coloured by which way is better, in words too; the surprising metrics explained.
        page.wait_for_selector("#results:not([hidden])")
        size = page.locator("#report tr[data-key=size_bytes] td").last
        assert size.get_attribute("class") == "better"
        assert "0.25×" in size.text_content() and "better" in size.text_content()
        latency = page.locator("#report tr[data-key='latency_ms.batch_1.p50'] td").last
        assert latency.get_attribute("class") == "worse" and "worse" in latency.text_content()
        sqnr = page.locator("#report tr[data-key='output_error.sqnr_db'] td").first
        assert "negative SQNR" in sqnr.get_attribute("title")
        footnotes = page.locator("#report-footnotes li").all_text_contents()
        assert any(n.startswith("SQNR (dB):") for n in footnotes) and any("agreement" in n for n in footnotes)
        save_screenshot(page, "experiment-page.png", tmp_path)

        # A failed run looks finished: its reason first, the bar in the failure's colour.
        page.goto(f"{web_server}/experiments/{failed.pk}/")
        outcome = page.locator("#exp-outcome")
        assert outcome.is_visible() and outcome.text_content().split()[0] == "Failed"
        assert "rejected an input" in page.locator("#exp-error").text_content()
        assert page.get_attribute("#exp-progress", "data-status") == "failed"
        assert page.evaluate("() => getComputedStyle(document.getElementById('exp-progress')).accentColor") \
            == "rgb(185, 28, 28)"
        # It never sent a point: a sentence says so instead of empty axes.
        page.wait_for_function("() => !document.getElementById('live-empty').hidden"
                               " && document.getElementById('live-empty').textContent.includes('no telemetry')")
        assert not page.locator("#chart").is_visible()
        save_screenshot(page, "experiment-failed.png", tmp_path)
    finally:
        connections.close_all()  # Playwright's loop gave this test a connection of its own; close it
