"""The accuracy budget: per-layer sensitivity, and which layers must stay float for the budget to hold.

A layer's sensitivity is the error of the model's output when only that layer is quantized, measured on
the same inputs the budget is judged on: 1 - top-1 agreement with the original model (top1_agreement), or
1 - mean cosine similarity of the outputs (cosine). Ties, common with top-1 on a few hundred samples, are
broken by the relative error ||q - f|| / ||f||. Every layer's value is reported as a metric
`sensitivity/<layer>` (the page charts them); then all layers are quantized and, while the budget fails,
the most sensitive layer still quantized is put back in float. At least one layer stays quantized: a model
with every layer float is not a quantized model, so the budget is then reported as not met.
"""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from optimizers.errors import Cancelled
from optimizers.reporters import Reporter

METRIC_LABELS = {"top1_agreement": "1 - top-1 agreement", "cosine": "1 - mean cosine similarity"}


@dataclass(frozen=True)
class Score:
    fidelity: float  # top-1 agreement or mean cosine with the original's outputs: 1.0 is identical
    relative_error: float

    @property
    def error(self) -> float:
        return 1.0 - self.fidelity


def score(reference: torch.Tensor, output: torch.Tensor, metric: str) -> Score:
    """How close `output` stays to `reference` (both [samples, ...] float tensors) by `metric`."""
    reference, output = reference.double(), output.double()
    relative = float((output - reference).norm() / reference.norm().clamp(min=1e-12))
    if metric == "top1_agreement":
        fidelity = float((output.argmax(dim=-1) == reference.argmax(dim=-1)).double().mean())
    elif metric == "cosine":
        rows = len(reference)
        fidelity = float(F.cosine_similarity(output.reshape(rows, -1), reference.reshape(rows, -1), dim=1).mean())
    else:
        raise ValueError(f"unknown budget metric {metric!r}; known: {', '.join(METRIC_LABELS)}")
    return Score(fidelity, relative)


@dataclass
class BudgetOutcome:
    model: Any  # the chosen quantized model
    all_quantized: Any  # every layer quantized: what the budget is compared against
    sensitivity: dict[str, Score]
    kept_float: list[str]
    achieved: Score
    met: bool
    history: list[dict] = field(default_factory=list)  # each try: {"kept_float": n, "fidelity": value}


Evaluate = Callable[[Any], Score]


def layer_sensitivity(quantizer, evaluate: Evaluate, report: Reporter) -> dict[str, Score]:
    """Each layer's score with only that layer quantized, reported as `sensitivity/<layer>` = its error."""
    layers = quantizer.layers()
    sensitivity = {}
    for index, layer in enumerate(layers):
        _stop_if_cancelled(report)
        others = frozenset(layers) - {layer}
        sensitivity[layer] = evaluate(quantizer.quantize(others))
        report.metric(f"sensitivity/{layer}", index, sensitivity[layer].error)
        report.progress(index + 1, 2 * len(layers), "sensitivity")
    return sensitivity


def by_sensitivity(sensitivity: dict[str, Score]) -> list[str]:
    """Layers, most sensitive first."""
    return sorted(sensitivity, key=lambda layer: (sensitivity[layer].error, sensitivity[layer].relative_error),
                  reverse=True)


def meet_budget(quantizer, evaluate: Evaluate, budget_min: float, report: Reporter) -> BudgetOutcome:
    """Quantize every layer, then keep the most sensitive ones float until the fidelity reaches `budget_min`."""
    sensitivity = layer_sensitivity(quantizer, evaluate, report)
    order = by_sensitivity(sensitivity)
    all_quantized = quantizer.quantize(frozenset())
    best = BudgetOutcome(all_quantized, all_quantized, sensitivity, [], evaluate(all_quantized), False)
    best.history.append({"kept_float": 0, "fidelity": best.achieved.fidelity})
    report.metric("budget/fidelity", 0, best.achieved.fidelity)
    kept: list[str] = []
    current = best.achieved
    while current.fidelity < budget_min and len(kept) < len(order) - 1:
        _stop_if_cancelled(report)
        kept.append(order[len(kept)])
        model = quantizer.quantize(frozenset(kept))
        current = evaluate(model)
        best.history.append({"kept_float": len(kept), "fidelity": current.fidelity})
        report.metric("budget/fidelity", len(kept), current.fidelity)
        report.progress(len(order) + len(kept), 2 * len(order), "budget")
        if current.fidelity > best.achieved.fidelity or current.fidelity >= budget_min:
            best.model, best.kept_float, best.achieved = model, list(kept), current
    best.met = best.achieved.fidelity >= budget_min
    return best


def _stop_if_cancelled(report: Reporter) -> None:
    if report.cancelled():
        raise Cancelled()
