"""What the compare page shows: experiments' reports side by side and the Pareto fronts of every pair of axes.

One builder for the page (embedded as JSON) and GET /api/compare/, and the only place that decides dominance:
the browser draws the fronts it is given.
"""
import itertools
from collections.abc import Callable

from django.urls import reverse

from optimizers.configs import RECIPE_CONFIGS
from webapp.models import Experiment

# key -> (label, path into a report, which way is better)
AXES = {
    "accuracy": ("accuracy", ("accuracy",), "higher"),
    "latency": ("latency p50, batch 1 (ms)", ("latency_ms", "batch_1", "p50"), "lower"),
    "size": ("file size (bytes)", ("size_bytes",), "lower"),
    "energy": ("energy per 1,000 inferences (J)", ("energy_j_per_1000",), "lower"),
}
_UNMEASURED = {
    "accuracy": ("quality_note", "accuracy was not measured"),
    "latency": ("latency_note", "latency was not measured"),
    "size": (None, "the size was not measured"),
    "energy": ("energy_note", "energy was not measured"),
}

_NO_REPORT = {"failed": "it failed, so it has no report", "cancelled": "it was cancelled, so it has no report"}


def comparison_of(experiments: list[Experiment], *, link: Callable[[str], str] = str) -> dict:
    """JSON-ready: axes, experiments (report, values per axis and why one is missing), references, fronts."""
    rows = [_experiment_entry(experiment, link) for experiment in experiments]
    datasets = {experiment.dataset_id for experiment in experiments}
    return {
        "axes": [{"key": key, "label": label, "better": better} for key, (label, _, better) in AXES.items()],
        "experiments": rows,
        "references": _references(experiments),
        # Accuracy and fidelity measured on different data do not compare: the page says so above everything.
        "datasets_differ": len(datasets) > 1,
        "fronts": {front_key(a, b): pareto_front(rows, a, b) for a, b in itertools.combinations(AXES, 2)},
    }


def front_key(a: str, b: str) -> str:
    """The key of the front of two axes, the same whichever is x."""
    first, second = sorted((a, b), key=list(AXES).index)
    return f"{first}|{second}"


def pareto_front(entries: list[dict], a: str, b: str) -> list[int]:
    """Ids of the entries no other entry dominates on axes a and b; entries missing either value take no part."""
    points = [(entry["id"], (entry["values"][a], entry["values"][b])) for entry in entries
              if entry["values"][a] is not None and entry["values"][b] is not None]
    senses = (AXES[a][2], AXES[b][2])
    return [pk for pk, point in points if not any(dominates(other, point, senses) for _, other in points)]


def dominates(p: tuple, q: tuple, senses: tuple) -> bool:
    """p is at least as good as q on every axis and better on one ("higher" or "lower" is better, per axis)."""
    as_good = all(x >= y if sense == "higher" else x <= y for x, y, sense in zip(p, q, senses, strict=True))
    return as_good and p != q


def report_value(report: dict | None, path: tuple):
    value = report
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _experiment_entry(experiment: Experiment, link) -> dict:
    summary = experiment.summary or {}
    report = summary.get("after") if experiment.status == Experiment.Status.SUCCEEDED else None
    values = {key: report_value(report, path) for key, (_, path, _) in AXES.items()}
    return {
        "id": experiment.pk, "url": link(reverse("experiment-detail", args=[experiment.pk])),
        "model": {"id": experiment.model_id, "name": experiment.model.name},
        "recipe": experiment.recipe, "variant": variant_of(experiment), "settings": changed_settings(experiment),
        "status": experiment.status, "dataset": experiment.dataset_id, "dataset_name": _dataset_name(experiment),
        "config": experiment.config,
        "backend": summary.get("backend"), "device": summary.get("device") or (report or {}).get("device"),
        "report": report, "before": summary.get("before") if report else None,
        "job_energy_j": job_energy_j(experiment),
        "artifacts": [{"name": artifact.name, "size_bytes": artifact.size_bytes,
                       "url": link(reverse("api-artifact-download", args=[experiment.pk, artifact.pk]))}
                      for artifact in experiment.artifacts.all()],
        "values": values,
        "missing": {key: why_missing(experiment, report, key) for key, value in values.items() if value is None},
    }


def job_energy_j(experiment: Experiment) -> float | None:
    """The GPU energy of the whole job: the first host's (the summary's) and, for a multi-host run, every further
    host's of the same attempt; None when no host measured any."""
    first = report_value((experiment.summary or {}).get("telemetry"), ("energy_j",))
    further = [report_value(telemetry, ("energy_j",)) for telemetry in (experiment.hosts_telemetry or {}).values()
               if isinstance(telemetry, dict) and telemetry.get("attempt") == experiment.attempt]
    known = [joules for joules in [first, *further] if joules is not None]
    return round(sum(known), 3) if known else None


def variant_of(experiment: Experiment) -> str:
    config_type = RECIPE_CONFIGS.get(experiment.recipe)
    return str(experiment.config.get(config_type.variant_field, "")) if config_type else ""


def changed_settings(experiment: Experiment) -> dict:
    """The settings that differ from the recipe's defaults (the variant is shown on its own)."""
    config_type = RECIPE_CONFIGS.get(experiment.recipe)
    changed = non_default_settings(experiment.recipe, experiment.config)
    return {key: value for key, value in changed.items() if config_type is None or key != config_type.variant_field}


def non_default_settings(recipe: str, config: dict) -> dict:
    """The settings of `config` that differ from `recipe`'s defaults: what a person chose."""
    config_type = RECIPE_CONFIGS.get(recipe)
    if config_type is None:
        return dict(config)
    defaults = config_type().to_dict()
    return {key: value for key, value in config.items() if defaults.get(key) != value}


def why_missing(experiment: Experiment, report: dict | None, key: str) -> str:
    if report is None:
        return _NO_REPORT.get(experiment.status, f"it has no report yet: it is {experiment.status}")
    if key == "accuracy" and experiment.dataset_id is None:
        return "it ran without a dataset, so accuracy was not measured"
    note_key, fallback = _UNMEASURED[key]
    return (report.get(note_key) if note_key else None) or fallback


def _dataset_name(experiment: Experiment) -> str | None:
    if experiment.dataset_id is None:
        return None
    return experiment.dataset.name if experiment.dataset else f"#{experiment.dataset_id}"


def _references(experiments: list[Experiment]) -> list[dict]:
    """The original model of each model and dataset compared: its `before` report from the earliest finished run
    on them (an original measured on other data has another accuracy)."""
    earliest = {}
    for experiment in sorted(experiments, key=lambda e: e.created_at):
        before = (experiment.summary or {}).get("before")
        key = (experiment.model_id, experiment.dataset_id)
        if experiment.status == Experiment.Status.SUCCEEDED and before and key not in earliest:
            earliest[key] = (experiment, before)
    return [{"model": {"id": experiment.model_id, "name": experiment.model.name}, "measured_in": experiment.pk,
             "dataset": experiment.dataset_id, "dataset_name": _dataset_name(experiment),
             "report": before, "values": {key: report_value(before, path) for key, (_, path, _) in AXES.items()}}
            for experiment, before in earliest.values()]
