"""A prune fine-tuned on two replicas, in Chromium: how many, that they stayed identical, and the scaling."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import finished_experiment
from webapp.models import Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pruned_on_two_ranks(carol):
    scaling = [{"ranks": 1, "samples_per_s": 2110.4, "efficiency": 1.0},
               {"ranks": 2, "samples_per_s": 1816.9, "efficiency": 0.4305}]
    return finished_experiment(carol, "prune", "global magnitude pruning", {
        "distributed": {"backend": "gloo", "ranks": 2, "replica_checks": 46, "scaling": scaling}})


def test_the_report_tells_the_replicas_and_their_scaling(pruned_on_two_ranks, browser_page, web_server, tmp_path):
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/{pruned_on_two_ranks.pk}/")
    browser_page.wait_for_selector("#results:not([hidden])")
    findings = browser_page.inner_text("#findings")
    assert "Fine-tuned on 2 data-parallel replicas (DDP over gloo)" in findings
    assert "compared after each of 46 steps and were identical" in findings
    assert "1 replica: 2,110 samples/s; 2 replicas: 1,817 samples/s (scaling efficiency 0.43)" in findings
    save_screenshot(browser_page, "ddp-report.png", tmp_path)


def test_a_run_across_hosts_says_how_many(carol, browser_page, web_server, tmp_path):
    scaling = [{"ranks": 1, "samples_per_s": 1391.0, "efficiency": 1.0},
               {"ranks": 2, "samples_per_s": 2250.5, "efficiency": 0.809, "hosts": 2}]
    across = finished_experiment(carol, "prune", "global magnitude pruning", {
        "distributed": {"backend": "gloo", "ranks": 2, "hosts": 2, "replica_checks": 46, "scaling": scaling}})
    Experiment.objects.filter(pk=across.pk).update(device_shape="cpu", hosts=2)
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/experiments/{across.pk}/")
    browser_page.wait_for_selector("#results:not([hidden])")
    assert browser_page.inner_text("#exp-hosts") == "on 2 hosts"
    findings = browser_page.inner_text("#findings")
    assert "Fine-tuned on 2 data-parallel replicas on 2 hosts (DDP over gloo)" in findings
    assert "1 replica: 1,391 samples/s; 2 replicas on 2 hosts: 2,251 samples/s (scaling efficiency 0.81)" in findings
    save_screenshot(browser_page, "ddp-across-hosts.png", tmp_path)
