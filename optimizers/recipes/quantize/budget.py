"""The accuracy budget inside the quantize recipe: inputs, reference, the search, and what it cost.

`sensitivity` (this package) does the measuring and the search; this prepares the inputs (validation split or
example input), states the outcome plainly in the notes, and fills `RecipeResult.extras`:
{"sensitivity": {layer: error}, "sensitivity_metric", "kept_float": [...], "budget": {"metric", "min",
"achieved", "met", "all_quantized", "samples", "source", "cost": {...}}}.
"""
from typing import Any

from optimizers.configs import QuantizeConfig
from optimizers.measure.inference import latency_ms
from optimizers.recipes.quantize.inputs import evaluation_set, first_output
from optimizers.recipes.quantize.sensitivity import METRIC_LABELS, BudgetOutcome, meet_budget, score
from optimizers.reporters import Reporter

# Bytes a weight value takes in float32 and in each integer variant: the size cost of keeping a layer float.
_FLOAT_BYTES = 4
_QUANTIZED_BYTES = {"weight_only_int4_cuda": 0.5, "weight_only_int4": 0.5}
_TIMING_ROWS = 32


def run_with_budget(quantizer, model: Any, data: Any, config: QuantizeConfig,
                    report: Reporter) -> tuple[Any, list[str], dict[str, Any]]:
    """(chosen quantized model, notes, extras) for the budget `config.budget_metric` >= `config.budget_min`."""
    example = quantizer.example
    evaluation = evaluation_set(data, example, config.budget_samples)
    reference = first_output(model, evaluation.inputs, example)

    def evaluate(candidate: Any):
        return score(reference, first_output(candidate, evaluation.inputs, example), config.budget_metric)

    report.stage("sensitivity")
    outcome = meet_budget(_Finished(quantizer), evaluate, config.budget_min, report)
    cost = _cost(quantizer, outcome, evaluation.inputs[:_TIMING_ROWS], config.variant)
    extras = {
        "sensitivity": {layer: found.error for layer, found in outcome.sensitivity.items()},
        "sensitivity_metric": METRIC_LABELS[config.budget_metric],
        "kept_float": outcome.kept_float,
        "budget": {"metric": config.budget_metric, "min": config.budget_min,
                   "achieved": outcome.achieved.fidelity, "met": outcome.met,
                   "all_quantized": outcome.history[0]["fidelity"], "history": outcome.history,
                   "samples": len(reference), "source": evaluation.source, "cost": cost},
    }
    note = _budget_note(config, outcome, len(quantizer.layers()), len(reference), evaluation.source, cost)
    report.log(note)
    return outcome.model, [note], extras


class _Finished:
    """The route as the budget sees it: every candidate in the form it would be saved and measured in.

    Judging the saved form, not an intermediate one, is what makes the budget's figure the report's figure
    (an eager dynamically quantized Transformer cannot even run eagerly: its attention fast path reads
    `linear.weight`, which quantized layers no longer have).
    """

    def __init__(self, quantizer) -> None:
        self.quantizer = quantizer

    def layers(self) -> list[str]:
        return self.quantizer.layers()

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> Any:
        return self.quantizer.finish(self.quantizer.quantize(keep_float))


def _cost(quantizer, outcome: BudgetOutcome, rows: Any, variant: str) -> dict[str, Any]:
    """What the float layers cost: extra weight bytes, and latency against the all-quantized model."""
    float_weights = sum(quantizer.layer_weights(layer) for layer in outcome.kept_float)
    extra = float_weights * (_FLOAT_BYTES - _QUANTIZED_BYTES.get(variant, 1))
    cost: dict[str, Any] = {"float_weights": float_weights, "extra_bytes": int(extra),
                            "latency_batch": len(rows), "latency_ms": None, "latency_ms_all_quantized": None}
    if outcome.kept_float:
        cost["latency_ms"] = latency_ms(outcome.model, rows, repeats=10, warmup=2, budget_s=2.0)["p50"]
        cost["latency_ms_all_quantized"] = latency_ms(outcome.all_quantized, rows, repeats=10, warmup=2,
                                                      budget_s=2.0)["p50"]
    return cost


def _budget_note(config: QuantizeConfig, outcome: BudgetOutcome, layers: int, samples: int, source: str,
                 cost: dict[str, Any]) -> str:
    name = "top-1 agreement" if config.budget_metric == "top1_agreement" else "output cosine"
    measured = f"{name} {outcome.achieved.fidelity:.5f} on {samples} sample(s) of the {source}"
    if outcome.met and not outcome.kept_float:
        return f"accuracy budget met with every layer quantized: {measured} (budget >= {config.budget_min})"
    kept = f"{len(outcome.kept_float)} of {layers} layer(s) kept float ({', '.join(outcome.kept_float)})"
    spent = f"about {cost['extra_bytes'] / 1024:.1f} KiB more weights than all-int8"
    if cost["latency_ms"] is not None:
        spent += (f", {cost['latency_ms']:.3f} ms vs {cost['latency_ms_all_quantized']:.3f} ms all-int8 at batch "
                  f"{cost['latency_batch']}")
    if outcome.met:
        return f"accuracy budget met: {measured} (budget >= {config.budget_min}) with {kept}; cost: {spent}"
    everything = outcome.history[0]["fidelity"]
    failed = (f"accuracy budget NOT met: best {measured} is below {config.budget_min} even with {kept}; every "
              f"layer quantized gives {everything:.5f}")
    return failed + (f"; cost: {spent}" if outcome.kept_float else "")
