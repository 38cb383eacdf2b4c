"""The models pages: the list with the upload form, one model with its recipe forms, and submitting an experiment."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from optimizers.configs import RECIPE_CONFIGS, ConfigError, parse_config
from optimizers.shapes import SUPPORTED_DTYPES
from webapp import selectors, services
from webapp.pages.forms import architecture_forms, recipe_config_form, recipe_forms
from webapp.selectors.comparison import non_default_settings


def home(request):
    return redirect("model-list")


def model_list(request):
    return render(request, "models/list.html", {
        "models": selectors.model_list_for(user=request.user),
        "dtypes": SUPPORTED_DTYPES,
        "architectures": architecture_forms(),
    })


def model_detail(request, model_id):
    model = selectors.model_get_for(user=request.user, model_id=model_id)
    return _render_model(request, model, recipe_forms())


def _render_model(request, model, forms, chosen="quantize", errors=(), status=200, rerun=None):
    """The model page. With `rerun` (an experiment), its form is filled with that experiment's settings; after a
    refused submit, with what was submitted."""
    posted = request.POST if request.method == "POST" else {}
    dataset = posted.get("dataset", "") if posted else (rerun.dataset_id if rerun else None)
    interval = posted.get("telemetry_interval_s", "") if posted else (rerun.telemetry_interval_s if rerun else "")
    return render(request, "models/detail.html", {
        "model": model,
        "recipe_forms": forms,
        "chosen": chosen,
        "errors": errors,
        "rerun": rerun,
        "chosen_dataset": int(dataset) if str(dataset or "").isdigit() else None,
        "telemetry_value": interval if interval is not None else "",
        "datasets": selectors.dataset_ready_for(user=request.user),
        "experiments": selectors.experiment_list_for(user=request.user, model=model),
        "telemetry_default_s": settings.TELEMETRY_INTERVAL_S,
        "lineage_settings": _lineage_settings(model),
    }, status=status)


def _lineage_settings(model) -> dict:
    """The settings beyond the defaults of the run that made this model, if Slimforge made it."""
    made_by = model.source_experiment
    return non_default_settings(made_by.recipe, made_by.config) if made_by else {}


@require_http_methods(["GET"])
def experiment_rerun(request, experiment_id):
    """"Run again": the experiment's model page with the form filled with its settings, to edit and start."""
    source = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
    return _render_model(request, source.model, recipe_forms(source.recipe, initial=source.config),
                         chosen=source.recipe, rerun=source)


@require_http_methods(["POST"])
def experiment_create(request, model_id):
    model = selectors.model_get_for(user=request.user, model_id=model_id)
    rerun = _rerun_source(request)
    recipe = request.POST.get("recipe", "")
    if recipe not in RECIPE_CONFIGS:
        return _render_model(request, model, recipe_forms(), errors=[f"Unknown recipe {recipe!r}."], status=400,
                             rerun=rerun)
    forms = recipe_forms(recipe, request.POST)
    form = dict(forms)[recipe]
    errors = []
    if form.is_valid():
        try:
            experiment = services.experiment_create(
                owner=request.user, model=model, recipe=recipe, config=form.cleaned_data,
                dataset=_chosen_dataset(request),
                telemetry_interval_s=_seconds_or_none(request, "telemetry_interval_s"), rerun_of=rerun)
        except ValidationError as exc:
            errors = ([f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()]
                      if hasattr(exc, "error_dict") else exc.messages)  # a quota's refusal names no field
        else:
            return redirect("experiment-detail", experiment_id=experiment.pk)
    return _render_model(request, model, forms, chosen=recipe, errors=errors, status=400, rerun=rerun)


def _rerun_source(request):
    """The experiment a submitted form re-runs (a hidden field of the form "Run again" opens), if any: yours."""
    source_id = request.POST.get("rerun_of", "")
    if not source_id.isdigit():
        return None
    return selectors.experiment_get_for(user=request.user, experiment_id=int(source_id))


@require_http_methods(["GET"])
def student_size(request, model_id):
    """JSON: the distill student the form's settings make, its parameters against this model's (the teacher's)."""
    teacher = selectors.model_get_for(user=request.user, model_id=model_id)
    form = recipe_config_form("distill", request.GET)
    if not form.is_valid():
        field, messages = next(iter(form.errors.items()))
        return JsonResponse({"error": f"{field}: {' '.join(messages)}"}, status=400)
    try:
        config = parse_config("distill", form.cleaned_data)
    except ConfigError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse(selectors.student_size_for(user=request.user, teacher=teacher, config=config))


def _seconds_or_none(request, field: str) -> float | None:
    text = request.POST.get(field, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValidationError({field: "Give a number of seconds, or leave it empty for the default."}) from None


def _chosen_dataset(request):
    dataset_id = request.POST.get("dataset") or ""
    if not dataset_id.isdigit():
        return None
    return selectors.dataset_get_for(user=request.user, dataset_id=int(dataset_id))
