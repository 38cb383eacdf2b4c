"""The accuracy budget: per-layer sensitivity, layers put back in float until the budget holds, said plainly."""
import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.errors import Cancelled
from optimizers.recipes.quantize.sensitivity import Score, by_sensitivity, meet_budget, score
from optimizers.registry import get_recipe
from optimizers.reporters import ListReporter, NullReporter
from tests.optimizers.quantize_models import DigitsMLP, digits, example, trained


def test_top1_agreement_and_cosine_by_hand():
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    output = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    assert score(reference, output, "top1_agreement").fidelity == 0.75
    assert score(reference, output, "cosine").fidelity == pytest.approx(0.75)  # rows: 1, 1, 0, 1
    assert score(reference, reference, "cosine") == Score(1.0, 0.0)
    with pytest.raises(ValueError, match="unknown budget metric"):
        score(reference, output, "mse")


class FakeRoute:
    """Layer a costs 0.001 of fidelity when quantized, b 0.02, c 0.005: the budget's arithmetic by hand."""

    COSTS = {"a": 0.001, "b": 0.02, "c": 0.005}

    def layers(self):
        return list(self.COSTS)

    def quantize(self, keep_float=frozenset()):
        return frozenset(self.COSTS) - keep_float  # the "model" is the set of quantized layers

    @staticmethod
    def evaluate(quantized):
        return Score(1.0 - sum(FakeRoute.COSTS[layer] for layer in quantized), 0.0)


def test_the_most_sensitive_layer_goes_back_to_float_first_and_only_as_many_as_needed():
    report = ListReporter()
    outcome = meet_budget(FakeRoute(), FakeRoute.evaluate, 0.99, report)
    assert by_sensitivity(outcome.sensitivity) == ["b", "c", "a"]
    assert outcome.kept_float == ["b"] and outcome.met and outcome.achieved.fidelity == pytest.approx(0.994)
    assert outcome.model == {"a", "c"}
    metrics = {event["name"]: event["value"] for event in report.events if event["kind"] == "metric"}
    assert metrics["sensitivity/b"] == pytest.approx(0.02) and metrics["sensitivity/a"] == pytest.approx(0.001)
    assert [h["kept_float"] for h in outcome.history] == [0, 1]


def test_a_budget_out_of_reach_is_not_met_and_one_layer_stays_quantized():
    outcome = meet_budget(FakeRoute(), FakeRoute.evaluate, 0.9999, NullReporter())
    assert not outcome.met and outcome.kept_float == ["b", "c"] and outcome.model == {"a"}
    assert outcome.achieved.fidelity == pytest.approx(0.999)


def test_cancel_stops_the_sensitivity_scan():
    report = NullReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        meet_budget(FakeRoute(), FakeRoute.evaluate, 0.99, report)


def budgeted(budget_min, report=None):
    config = QuantizeConfig(variant="static_int8", budget_metric="cosine", budget_min=budget_min)
    return get_recipe("quantize").run(trained(DigitsMLP), digits(), config, report or NullReporter(),
                                      example=example())


def test_static_int8_with_a_budget_keeps_the_most_sensitive_layers_float_and_reports_them():
    unreachable = budgeted(1.0)
    everything = unreachable.extras["budget"]["all_quantized"]
    assert unreachable.extras["budget"]["met"] is False and any("NOT met" in note for note in unreachable.notes)
    assert len(unreachable.extras["kept_float"]) == 2  # all but one of the three Linear layers

    report = ListReporter()
    result = budgeted((everything + 1.0) / 2, report)  # every layer quantized misses it; float fallback reaches it
    extras = result.extras
    order = sorted(extras["sensitivity"], key=extras["sensitivity"].get, reverse=True)
    assert extras["kept_float"] == order[:len(extras["kept_float"])] and extras["kept_float"]
    assert extras["budget"]["met"] is True and extras["budget"]["achieved"] >= extras["budget"]["min"]
    assert extras["budget"]["source"] == "validation split" and extras["sensitivity_metric"].startswith("1 - ")
    assert extras["budget"]["cost"]["extra_bytes"] == 3 * extras["budget"]["cost"]["float_weights"] > 0
    assert any(note.startswith("accuracy budget met") and "kept float" in note for note in result.notes)
    charted = {event["name"] for event in report.events if event["kind"] == "metric"}
    assert {f"sensitivity/{layer}" for layer in extras["sensitivity"]} | {"budget/fidelity"} == charted
    assert str(result.model.inlined_graph).count("quantized::linear") == 3 - len(extras["kept_float"])


def test_without_a_dataset_the_budget_is_judged_on_the_example_input():
    config = QuantizeConfig(budget_metric="top1_agreement", budget_min=0.5)
    result = get_recipe("quantize").run(trained(DigitsMLP), None, config, NullReporter(), example=example())
    assert result.extras["budget"]["source"] == "example input" and result.extras["budget"]["samples"] == 1
