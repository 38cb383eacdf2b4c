"""The experiment pages: one experiment (live), the list, and the compare page. Thin: parse, call one selector,
render.
"""
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from optimizers.configs import RECIPE_CONFIGS
from webapp import selectors, services
from webapp.models import Experiment
from webapp.pages import labels, refusals
from webapp.selectors.comparison_table import comparison_table
from webapp.selectors.experiment_page import experiment_page_facts
from webapp.selectors.filters import RESULT_LIMITS, compare_ids, experiment_filters
from webapp.selectors.results import RESULTS, result_cells

PAGE_SIZE = 50
_FILTER_FIELDS = ("status", "recipe", "model", "q", "order", *RESULT_LIMITS)


def experiment_detail(request, experiment_id):
    experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
    return render(request, "experiments/detail.html", {"experiment": experiment, "job_attempts": settings.JOB_ATTEMPTS,
                                                        "labels_refusal": refusals.take(request, labels.FORM),
                                                        "changes": selectors.rerun_changes(experiment),
                                                        "waiting": selectors.waiting_note(experiment),
                                                        "facts": experiment_page_facts(experiment)})


@require_POST
def experiment_cancel(request, experiment_id):
    """The Cancel buttons of the experiment page and the list: back where the button was, saying what happened."""
    try:
        experiment = services.experiment_cancel(user=request.user, experiment_id=experiment_id)
    except Experiment.DoesNotExist:
        raise Http404("No such experiment.") from None
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        done = "cancelled" if experiment.is_finished else "stopping at its next step"
        messages.success(request, f"Experiment #{experiment.pk} is {done}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = f"/experiments/{experiment_id}/"
    return redirect(back)


def experiment_list(request):
    try:
        filters = experiment_filters(request.GET)
    except ValidationError as exc:
        return _render_list(request, None, errors=_messages(exc))
    experiments = selectors.experiment_search_for(user=request.user, **filters)
    page = Paginator(experiments, PAGE_SIZE).get_page(request.GET.get("page"))
    for experiment in page:
        experiment.result_cells = result_cells(experiment)
    return _render_list(request, page, order=filters["order"])


def _render_list(request, page, errors=(), order="-created"):
    chosen = {field: request.GET.get(field, "") for field in _FILTER_FIELDS}
    # Page links keep the filters: a URL with its query string is a shareable view of the list.
    query = request.GET.copy()
    query.pop("page", None)
    sorts = _sort_headers(request, order)
    return render(request, "experiments/list.html", {
        "page": page, "errors": errors, "chosen": chosen, "query": query.urlencode(),
        "statuses": Experiment.Status.values, "recipes": sorted(RECIPE_CONFIGS),
        "models": selectors.model_list_for(user=request.user).only("id", "name").order_by("name", "id"),
        "sorts": sorts, "results": RESULTS,
        "result_headers": [{"key": key, "label": result.label, "help": result.help, **sorts[key]}
                           for key, result in RESULTS.items()],
        "filtered": any(chosen[field] for field in _FILTER_FIELDS if field != "order"),
    }, status=400 if errors else 200)


def _sort_headers(request, order: str) -> dict:
    """Per sortable column: its link (the same filters, the other direction; a new column starts with its better
    end first) and its aria-sort."""
    headers = {}
    for key in ("created", *RESULTS):
        first = "-created" if key == "created" else ("-" if RESULTS[key].better == "higher" else "") + key
        current = order.removeprefix("-") == key
        following = ("" if order.startswith("-") else "-") + key if current else first
        query = request.GET.copy()
        query.pop("page", None)
        query["order"] = following
        headers[key] = {"href": "?" + query.urlencode(),
                        "aria_sort": ("descending" if order.startswith("-") else "ascending") if current else "none"}
    return headers


def compare(request):
    try:
        ids = compare_ids(request.GET)
    except ValidationError as exc:
        return render(request, "experiments/compare.html", {"errors": _messages(exc)}, status=400)
    comparison = selectors.comparison_for(user=request.user, ids=ids)
    return render(request, "experiments/compare.html", {
        "comparison": comparison, "table": comparison_table(comparison),
    })


def _messages(exc: ValidationError) -> list[str]:
    return [f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()]
