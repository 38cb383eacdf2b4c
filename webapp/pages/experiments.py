"""The experiment pages: one experiment (live), the list, and the compare page. Thin: parse, call one selector,
render.
"""
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import render

from optimizers.configs import RECIPE_CONFIGS
from webapp import selectors
from webapp.models import Experiment
from webapp.selectors.comparison_table import comparison_table
from webapp.selectors.filters import compare_ids, experiment_filters

PAGE_SIZE = 50
_FILTER_FIELDS = ("status", "recipe", "model", "q")


def experiment_detail(request, experiment_id):
    experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
    return render(request, "experiments/detail.html", {"experiment": experiment})


def experiment_list(request):
    try:
        filters = experiment_filters(request.GET)
    except ValidationError as exc:
        return _render_list(request, None, errors=_messages(exc))
    experiments = selectors.experiment_search_for(user=request.user, **filters)
    return _render_list(request, Paginator(experiments, PAGE_SIZE).get_page(request.GET.get("page")))


def _render_list(request, page, errors=()):
    chosen = {field: request.GET.get(field, "") for field in _FILTER_FIELDS}
    # Page links keep the filters: a URL with its query string is a shareable view of the list.
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "experiments/list.html", {
        "page": page, "errors": errors, "chosen": chosen, "query": query.urlencode(),
        "statuses": Experiment.Status.values, "recipes": sorted(RECIPE_CONFIGS),
        "models": selectors.model_list_for(user=request.user).only("id", "name").order_by("name", "id"),
    }, status=400 if errors else 200)


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
