"""The result figures the experiment list sorts and filters on, read from the finished report in `summary`
(optimizers.job_runner: `ratios` after/before, `before` and `after`).

One table serves the database (annotations the list orders and filters by, so paging stays in SQL) and Python
(the API's `results` of one experiment), so the two never disagree on where a figure lives.
"""
from dataclasses import dataclass

from django.db.models import Case, F, FloatField, Q, TextField, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from optimizers.configs import RECIPE_CONFIGS
from webapp.models import Experiment


@dataclass(frozen=True)
class Result:
    label: str  # the list's column header
    better: str  # "lower" or "higher"
    help: str  # the header's hover


RESULTS = {
    "size_ratio": Result("size ratio", "lower", "The result's file size divided by the original's (below 1: smaller)."),
    "latency_ratio": Result("latency ratio", "lower",
                            "Latency p50 at batch 1 divided by the original's, both measured in the same run "
                            "(below 1: faster)."),
    "accuracy_delta": Result("accuracy Δ", "higher",
                             "Top-1 accuracy minus the original's on the same dataset, in percentage points."),
    "energy": Result("energy (J/1k)", "lower",
                     "GPU energy per 1,000 inferences (whole-GPU NVML counter, idle draw included); "
                     "measured on CUDA GPUs only."),
}
# The report's numbers: a path under summary, or (for the accuracy delta) two paths subtracted.
_RATIO_PATHS = {"size_ratio": ("ratios", "size"), "latency_ratio": ("ratios", "latency_p50_batch_1"),
                "energy": ("after", "energy_j_per_1000")}
_ACCURACY = (("after", "accuracy"), ("before", "accuracy"))
ORDERS = ("created", *RESULTS)  # what ?order= may name, with a leading "-" for descending


def _number(path: tuple[str, ...]):
    # ->> reads the JSON value as text (a JSON null becomes SQL NULL), which casts cleanly to a float.
    return Cast(KT("summary__" + "__".join(path)), FloatField())


def _succeeded(expression):
    """Only a finished report's figures count: a failed run's partial summary sorts with the unfinished ones."""
    return Case(When(status=Experiment.Status.SUCCEEDED, then=expression), default=Value(None),
                output_field=FloatField())


def with_results(experiments):
    """Each experiment annotated with RESULTS' figures (NULL until it has succeeded with that figure)."""
    after, before = (_number(path) for path in _ACCURACY)
    figures = {key: _succeeded(_number(path)) for key, path in _RATIO_PATHS.items()}
    figures["accuracy_delta"] = _succeeded((after - before) * Value(100.0))
    return experiments.annotate(**figures)


def with_variant(experiments):
    """Each experiment annotated with its variant: the config field its recipe names as such (quantize's
    `variant`, prune's `method`, distill's `student`), "" for a recipe without one."""
    whens = [When(recipe=recipe, then=KT(f"config__{config_type.variant_field}"))
             for recipe, config_type in sorted(RECIPE_CONFIGS.items()) if config_type.variant_field]
    return experiments.annotate(variant=Case(*whens, default=Value(""), output_field=TextField()))


def result_filter(key: str, limit: float) -> Q:
    """`key` at most `limit` (the accuracy filter is a drop: the delta at least minus `limit`)."""
    if key == "accuracy_drop":
        return Q(accuracy_delta__gte=-limit)
    return Q(**{f"{key}__lte": limit})


def result_order(order: str) -> list:
    """ORDER BY for ?order=: the figure that way, runs without it last whichever way, then newest first (the id
    breaks ties, so pages never overlap)."""
    key = order.removeprefix("-")
    if key == "created":
        return ["created_at", "pk"] if order == key else ["-created_at", "-pk"]
    figure = F(key).desc(nulls_last=True) if order.startswith("-") else F(key).asc(nulls_last=True)
    return [figure, "-created_at", "-pk"]


def result_cells(experiment) -> list[dict]:
    """The list's result cells of an annotated experiment (with_results): {key, text, verdict}, where verdict says
    whether the figure beats the original ("better", "worse", "" when level or not comparable)."""
    cells = []
    for key in RESULTS:
        value = getattr(experiment, key, None)
        cells.append({"key": key, "text": _shown(key, value), "verdict": _verdict(key, value)})
    return cells


def _shown(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "accuracy_delta":
        return f"{value:+.2f} pts"
    return f"{value:.2f} J" if key == "energy" else f"{value:.2f}×"


def _verdict(key: str, value) -> str:
    level = {"size_ratio": 1.0, "latency_ratio": 1.0, "accuracy_delta": 0.0}.get(key)
    # Judged on what the cell shows: a 0.999× ratio reads "1.00×" and is level, not better.
    if value is None or level is None or round(value, 2) == level:
        return ""
    return "better" if (value < level) == (RESULTS[key].better == "lower") else "worse"


def results_of(experiment: Experiment) -> dict:
    """The same figures of one experiment, from its summary, for the API."""
    summary = (experiment.summary or {}) if experiment.status == Experiment.Status.SUCCEEDED else {}
    figures = {key: _dig(summary, path) for key, path in _RATIO_PATHS.items()}
    after, before = (_dig(summary, path) for path in _ACCURACY)
    figures["accuracy_delta"] = None if after is None or before is None else round(100.0 * (after - before), 6)
    return figures


def _dig(report: dict, path: tuple[str, ...]):
    value = report
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
