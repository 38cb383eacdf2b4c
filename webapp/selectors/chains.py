"""Reads of chains: each step with its latest experiment and the model it made, and the final model against the
first. Every query starts from the user (404 otherwise)."""
from collections import Counter

from django.shortcuts import get_object_or_404

from webapp.models import Chain, Experiment, UploadedModel
from webapp.selectors.comparison import AXES, non_default_settings, report_value, why_missing


def chain_list_for(*, user):
    return Chain.objects.filter(owner=user).select_related("model").prefetch_related("steps")


def chain_get_for(*, user, chain_id) -> Chain:
    return get_object_or_404(chain_list_for(user=user), pk=chain_id)


def chain_view(chain: Chain) -> dict:
    """JSON-ready: the chain, its steps (settings, latest experiment, result model) and the first-vs-final table."""
    experiments, runs = {}, Counter()
    for experiment in chain.experiments.order_by("pk"):
        experiments[experiment.chain_index] = experiment  # the latest run of each step wins
        runs[experiment.chain_index] += 1
    outputs = {model.source_experiment_id: model
               for model in UploadedModel.objects.filter(source_experiment__in=list(experiments.values()))}
    steps = []
    for step in chain.steps.all():
        experiment = experiments.get(step.index)
        output = outputs.get(experiment.pk) if experiment else None
        steps.append({
            "index": step.index, "recipe": step.recipe, "config": step.config, "dataset": step.dataset_id,
            "chosen": non_default_settings(step.recipe, step.config),
            "status": experiment.status if experiment else "waiting",
            "experiment": _experiment_brief(experiment) if experiment else None,
            "runs": runs[step.index],
            "output_model": {"id": output.pk, "name": output.name, "status": output.status} if output else None,
        })
    return {"id": chain.pk, "name": chain.name, "status": chain.status, "error": chain.error,
            "current_index": chain.current_index, "model": chain.model_id, "created_at": chain.created_at,
            "finished_at": chain.finished_at, "steps": steps, "first_vs_final": first_vs_final(chain, experiments)}


def _experiment_brief(experiment: Experiment) -> dict:
    return {"id": experiment.pk, "status": experiment.status, "progress": experiment.progress,
            "stage": experiment.stage, "error": experiment.error, "attempt": experiment.attempt,
            "model": experiment.model_id}


def first_vs_final(chain: Chain, experiments: dict[int, Experiment]) -> list[dict]:
    """Each axis of the comparison, measured on the chain's first model (before its first step) and on the last
    step's result; empty until the last step has succeeded."""
    last_index = max((step.index for step in chain.steps.all()), default=None)
    first, last = experiments.get(0), experiments.get(last_index)
    if first is None or last is None or last.status != Experiment.Status.SUCCEEDED:
        return []
    before, after = (first.summary or {}).get("before"), (last.summary or {}).get("after")
    rows = []
    for key, (label, path, better) in AXES.items():
        a, b = report_value(before, path), report_value(after, path)
        rows.append({"axis": key, "label": label, "better": better, "first": a, "final": b,
                     "ratio": (b / a) if a not in (None, 0) and b is not None else None,
                     # A dash says why: no dataset, say, so no accuracy was measured.
                     "first_missing": why_missing(first, before, key) if a is None else "",
                     "final_missing": why_missing(last, after, key) if b is None else ""})
    return rows
