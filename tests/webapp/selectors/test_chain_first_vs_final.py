"""The chain page's first-vs-final table says why a figure is missing instead of a bare dash."""
import pytest

from tests.factories import ready_model
from webapp.models import Chain, ChainStep, Experiment
from webapp.selectors.chains import first_vs_final

pytestmark = pytest.mark.django_db


def test_a_missing_accuracy_says_that_the_chain_ran_without_a_dataset(alice):
    model = ready_model(alice)
    chain = Chain.objects.create(owner=alice, model=model, status=Chain.Status.SUCCEEDED)
    ChainStep.objects.create(chain=chain, index=0, recipe="quantize")
    report = {"size_bytes": 1000, "latency_ms": {"batch_1": {"p50": 1.0}}, "accuracy": None}
    run = Experiment.objects.create(owner=alice, model=model, recipe="quantize", chain=chain, chain_index=0,
                                    status=Experiment.Status.SUCCEEDED,
                                    summary={"before": report, "after": {**report, "size_bytes": 250}})
    rows = {row["axis"]: row for row in first_vs_final(chain, {0: run})}
    assert rows["size"]["ratio"] == 0.25 and rows["size"]["first_missing"] == rows["size"]["final_missing"] == ""
    assert rows["accuracy"]["first"] is None
    assert rows["accuracy"]["first_missing"] == rows["accuracy"]["final_missing"] == \
        "it ran without a dataset, so accuracy was not measured"
