"""The models pages: the list with the upload form, one model with its recipe forms, and submitting an experiment."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from optimizers.configs import RECIPE_CONFIGS, ConfigError, parse_config
from optimizers.configs.devices import ANY, gpus_of
from optimizers.shapes import SUPPORTED_DTYPES
from webapp import selectors, services
from webapp.pages import labels, refusals
from webapp.pages.forms import architecture_forms, mark_invalid, recipe_config_form, recipe_forms
from webapp.pages.upload_rules import model_upload_rules
from webapp.selectors.comparison import non_default_settings


def model_list(request):
    return render(request, "models/list.html", {
        "models": selectors.model_list_for(user=request.user),
        "dtypes": SUPPORTED_DTYPES,
        "architectures": architecture_forms(),
        "upload_rules": model_upload_rules(),
    })


EXPERIMENT_FORM = "experiment-form"


def model_detail(request, model_id):
    model = selectors.model_get_for(user=request.user, model_id=model_id)
    refusal = refusals.take(request, EXPERIMENT_FORM)
    if refusal is None:
        return _render_model(request, model, recipe_forms())
    recipe = refusal.values.get("recipe", "")
    if recipe not in RECIPE_CONFIGS:
        return _render_model(request, model, recipe_forms(), refusal=refusal)
    # Bound again to what was posted, the form finds its own field errors again; the service's are added to them.
    forms = recipe_forms(recipe, refusal.values)
    form = dict(forms)[recipe]
    for name, messages in refusal.errors.items():
        setting = name.removeprefix(f"{recipe}-")
        if setting != name and setting in form.fields:
            form.add_error(setting, messages)
    mark_invalid(form)
    return _render_model(request, model, forms, chosen=recipe, refusal=refusal,
                         rerun=_rerun_source(request, refusal.values.get("rerun_of", ""), missing_ok=True))


def _render_model(request, model, forms, chosen="quantize", refusal=None, rerun=None):
    """The model page. With `rerun` (an experiment), its form is filled with that experiment's settings; after a
    refused submit, with what was submitted."""
    if refusal is not None:
        dataset, interval = refusal.values.get("dataset", ""), refusal.values.get("telemetry_interval_s", "")
        device, hosts = refusal.values.get("device_shape", ""), refusal.values.get("hosts", "")
    else:
        dataset = rerun.dataset_id if rerun else None
        interval = rerun.telemetry_interval_s if rerun else ""
        device, hosts = (rerun.device_shape, rerun.hosts) if rerun else ("", 1)
    return render(request, "models/detail.html", {
        "model": model,
        "recipe_forms": forms,
        "chosen": chosen,
        "refusal": refusal,
        "form_has_errors": any(form.errors for _, form in forms if form.is_bound),
        "labels_refusal": refusals.take(request, labels.FORM),
        "rerun": rerun,
        "chosen_dataset": int(dataset) if str(dataset or "").isdigit() else None,
        "telemetry_value": interval if interval is not None else "",
        "datasets": selectors.dataset_ready_for(user=request.user),
        "experiments": selectors.experiment_list_for(user=request.user, model=model),
        "telemetry_default_s": settings.TELEMETRY_INTERVAL_S,
        "device_choices": device_choices(device),
        "chosen_device": device or ANY,
        "hosts_value": hosts,
        "max_hosts": settings.MAX_HOSTS,
        "lineage_settings": _lineage_settings(model),
    })


def device_choices(chosen: str = "") -> list[tuple[str, str]]:
    """Any device, then the shapes live workers serve, and the one asked for before (a re-run's) even if none
    serves it now."""
    online = selectors.offered_shapes()
    shapes = online + ([chosen] if chosen not in (*online, ANY, "") and gpus_of(chosen) is not None else [])
    choices = [(ANY, "any: the first free worker")]
    for shape in shapes:
        gpus = gpus_of(shape)
        what = "a CPU worker" if gpus == 0 else "a worker with one GPU" if gpus == 1 else f"a worker with {gpus} GPUs"
        choices.append((shape, f"{shape}: {what}" + ("" if shape in online else " (none online now: it waits)")))
    return choices


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
    """Start an experiment, or send the form back to the model page with what was posted and why it was refused."""
    model = selectors.model_get_for(user=request.user, model_id=model_id)
    rerun = _rerun_source(request, request.POST.get("rerun_of", ""))
    page = reverse("model-detail", args=[model.pk])
    recipe = request.POST.get("recipe", "")
    if recipe not in RECIPE_CONFIGS:
        return refusals.refuse(request, EXPERIMENT_FORM, page, errors={"recipe": [f"Unknown recipe {recipe!r}."]})
    form = recipe_config_form(recipe, request.POST)
    if not form.is_valid():
        return refusals.refuse(request, EXPERIMENT_FORM, page)  # the form says why again when it is shown
    try:
        experiment = services.experiment_create(
            owner=request.user, model=model, recipe=recipe, config=form.cleaned_data,
            dataset=_chosen_dataset(request),
            telemetry_interval_s=_seconds_or_none(request, "telemetry_interval_s"), rerun_of=rerun,
            device_shape=request.POST.get("device_shape", ""), hosts=_hosts(request))
    except ValidationError as exc:
        errors, summary = refusals.split_errors(exc, lambda key: _experiment_input(key, recipe, form))
        return refusals.refuse(request, EXPERIMENT_FORM, page, errors=errors, summary=summary)
    return redirect("experiment-detail", experiment_id=experiment.pk)


def _experiment_input(key: str, recipe: str, form) -> str | None:
    """The input of the experiment form a service's error key belongs to."""
    if key in ("recipe", "dataset", "telemetry_interval_s", "device_shape", "hosts"):
        return key
    setting = key.removeprefix("config.")
    return form[setting].html_name if setting != key and setting in form.fields else None


def _rerun_source(request, source_id: str, missing_ok: bool = False):
    """The experiment a form re-runs (a hidden field of the form "Run again" opens), if any: yours. Shown again
    after a refusal, one deleted since then is simply no longer named."""
    if not source_id.isdigit():
        return None
    if missing_ok:
        return selectors.experiment_list_for(user=request.user).filter(pk=int(source_id)).first()
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


def _hosts(request) -> int:
    """The form's number of hosts: empty is one; the range is the service's to check."""
    text = request.POST.get("hosts", "").strip()
    if not text:
        return 1
    try:
        return int(text)
    except ValueError:
        raise ValidationError({"hosts": f"Give a whole number of hosts from 1 to {settings.MAX_HOSTS}."}) from None


def _chosen_dataset(request):
    dataset_id = request.POST.get("dataset") or ""
    if not dataset_id.isdigit():
        return None
    return selectors.dataset_get_for(user=request.user, dataset_id=int(dataset_id))
