"""The chain pages: a chain's form on a model, the list, one chain with its steps live, cancel and resume."""
import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from optimizers.configs import RECIPE_CONFIGS
from webapp import selectors, services
from webapp.models import Chain
from webapp.pages import refusals
from webapp.selectors.chains import chain_get_for, chain_list_for, chain_view

FORM_STEPS = 4  # rows on the form; an empty row ends the chain
EXAMPLE = [("prune", '{"target_sparsity": 0.3, "epochs": 1}'), ("distill", '{"student": "thinner_copy", "epochs": 2}'),
           ("quantize", '{"variant": "dynamic_int8"}')]


FORM = "chain-form"
_STEP_INPUTS = ("recipe", "dataset", "config")


def _chain_input(key: str) -> str | None:
    """The input of the chain form a service's error key belongs to: a step's setting belongs to its JSON box."""
    if key == "name":
        return key
    parts = key.split(".")
    if len(parts) >= 3 and parts[0] == "steps" and parts[1].isdigit() and parts[2] in _STEP_INPUTS:
        return f"step-{parts[1]}-{parts[2]}"
    return None


def _named_settings(exc: ValidationError) -> ValidationError:
    """A step's setting shares the JSON box with the others, so its error says which one it is about."""
    if not hasattr(exc, "error_dict"):
        return exc
    errors = {}
    for key, lines in exc.message_dict.items():
        parts = key.split(".")
        if len(parts) > 3 and parts[2] == "config":
            setting = refusals.about(".".join(parts[3:]))
            errors.setdefault(".".join(parts[:3]), []).extend(f"{setting}: {line}" for line in lines)
        else:
            errors.setdefault(key, []).extend(lines)
    return ValidationError(errors)


def _form_rows(post=None) -> list[dict]:
    rows = []
    for index in range(FORM_STEPS):
        if post is None:
            recipe, config = EXAMPLE[index] if index < len(EXAMPLE) else ("", "")
            rows.append({"index": index, "recipe": recipe, "config": config, "dataset": ""})
        else:
            rows.append({"index": index, "recipe": post.get(f"step-{index}-recipe", ""),
                         "config": post.get(f"step-{index}-config", ""),
                         "dataset": post.get(f"step-{index}-dataset", "")})
        rows[-1]["inputs"] = {part: f"step-{index}-{part}" for part in _STEP_INPUTS}
    return rows


def _steps_from(request, rows) -> list[dict]:
    """The filled rows as the service's steps; a row's errors name its step."""
    steps = []
    for row in rows:
        if not row["recipe"]:
            break
        try:
            config = json.loads(row["config"] or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError({f"steps.{row['index']}.config": f"Not JSON: {exc.msg} at column {exc.colno}."}
                                  ) from None
        if not isinstance(config, dict):
            raise ValidationError({f"steps.{row['index']}.config": 'Give the settings as a JSON object: {"amount": '
                                                                   '0.3}.'})
        dataset = None
        if row["dataset"].isdigit():
            dataset = selectors.dataset_get_for(user=request.user, dataset_id=int(row["dataset"]))
        steps.append({"recipe": row["recipe"], "config": config, "dataset": dataset})
    return steps


@require_http_methods(["GET", "POST"])
def chain_create(request, model_id):
    """The chain form; a refused one comes back (by a redirect) with what was posted and why."""
    model = selectors.model_get_for(user=request.user, model_id=model_id)
    if request.method == "POST":
        try:
            chain = services.chain_create(owner=request.user, model=model,
                                          steps=_steps_from(request, _form_rows(request.POST)),
                                          name=request.POST.get("name", ""))
        except ValidationError as exc:
            errors, summary = refusals.split_errors(_named_settings(exc), _chain_input)
            return refusals.refuse(request, FORM, reverse("chain-create", args=[model.pk]), errors=errors,
                                   summary=summary)
        return redirect("chain-detail", chain_id=chain.pk)
    refusal = refusals.take(request, FORM)
    datasets = selectors.dataset_ready_for(user=request.user)
    return render(request, "chains/form.html", {
        "model": model, "rows": _form_rows(refusal.values if refusal else None), "refusal": refusal,
        "recipes": list(RECIPE_CONFIGS), "datasets": datasets,
        "name": refusal.values.get("name", "") if refusal else ""})


def chain_list(request):
    chains = [chain_view(chain) for chain in chain_list_for(user=request.user)[:200]]
    return render(request, "chains/list.html", {"chains": chains})


def chain_detail(request, chain_id):
    chain = chain_get_for(user=request.user, chain_id=chain_id)
    return render(request, "chains/detail.html", {"chain": chain, "view": chain_view(chain)})


@require_POST
def chain_cancel(request, chain_id):
    try:
        chain = services.chain_cancel(user=request.user, chain_id=chain_id)
    except Chain.DoesNotExist:
        raise Http404("No such chain.") from None
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Chain #{chain.pk}: cancelling step {chain.current_index + 1}.")
    return redirect("chain-detail", chain_id=chain_id)


@require_POST
def chain_resume(request, chain_id):
    chain_get_for(user=request.user, chain_id=chain_id)  # 404 first for anything not yours
    try:
        changes = json.loads(request.POST.get("config") or "{}")
        chain = services.chain_resume(user=request.user, chain_id=chain_id, config_changes=changes)
    except json.JSONDecodeError as exc:
        messages.error(request, f"The settings are not JSON: {exc.msg} at column {exc.colno}.")
    except ValidationError as exc:
        messages.error(request, " ".join(refusals.split_errors(exc, lambda key: None)[1]))
    else:
        messages.success(request, f"Chain #{chain.pk} resumed from step {chain.current_index + 1}.")
    return redirect("chain-detail", chain_id=chain_id)
