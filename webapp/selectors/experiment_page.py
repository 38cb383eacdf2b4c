"""What the experiment page shows beside its charts: who ran it, when and for how long, where, on which data, the
settings as a table against the recipe's defaults, and what it led to. Callers pass an experiment the user owns."""
from datetime import datetime

from django.utils import timezone

from optimizers.configs import RECIPE_CONFIGS
from optimizers.data.compat import describe_fit
from webapp.models import Experiment, UploadedModel


def experiment_page_facts(experiment: Experiment) -> dict:
    summary = experiment.summary or {}
    settings = settings_table(experiment.recipe, experiment.config)
    return {
        "settings": settings,
        "changed_settings": sum(row["changed"] for row in settings),
        "timing": _timing(experiment),
        "device": summary.get("device") or (summary.get("after") or {}).get("device"),
        "backend": summary.get("backend"),
        "data_fit": _data_fit(experiment),
        "made_models": list(UploadedModel.objects.filter(owner_id=experiment.owner_id, source_experiment=experiment)
                            .only("id", "name").order_by("id")),
    }


def settings_table(recipe: str, config: dict) -> list[dict]:
    """One row per setting, in the recipe's order: its value in words, the default, and whether it was changed."""
    config_type = RECIPE_CONFIGS.get(recipe)
    defaults = config_type().to_dict() if config_type else {}
    names = [*defaults, *(key for key in config if key not in defaults)]
    rows = []
    for name in names:
        value = config.get(name, defaults.get(name))
        rows.append({"name": name.replace("_", " "), "key": name, "value": _words(value),
                     "default": _words(defaults[name]) if name in defaults else "—",
                     "changed": name in config and name in defaults and config[name] != defaults[name]})
    return rows


def _words(value) -> str:
    """A setting as a person reads it: yes/no, lists with commas, nested settings as key=value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_words(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{key}={_words(item)}" for key, item in value.items()) if value else "none"
    return str(value)


def _timing(experiment: Experiment) -> dict:
    started, finished = experiment.started_at, experiment.finished_at
    return {
        "queued_for": _seconds(experiment.created_at, started or (None if experiment.is_finished else timezone.now())),
        "ran_for": _seconds(started, finished or (None if experiment.is_finished else timezone.now())),
        "running": started is not None and not experiment.is_finished,
    }


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end and end >= start else None


def _data_fit(experiment: Experiment) -> str | None:
    """How the dataset's samples are made to fit the model, known before the run (the report says it after)."""
    reported = (experiment.summary or {}).get("data")
    if reported:
        return reported.get("note")
    if experiment.dataset is None:
        return None
    info = experiment.dataset.info or {}
    sample_shape, model = info.get("sample_shape"), experiment.model
    return describe_fit(sample_shape, model.input_shape, model.input_dtype, info.get("dtype") or "float32") \
        if sample_shape else None
