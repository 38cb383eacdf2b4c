"""/experiments/ and GET /api/experiments/ ordered and filtered by the reports' numbers, in the database, with the
paging and the other filters; the variant in its own column; owners only; bad parameters a 400 naming the field."""
import re

import pytest

from tests.factories import ready_model
from tests.webapp.pages.list_ids import api_ids, page_ids
from webapp import selectors
from webapp.models import Experiment

pytestmark = pytest.mark.django_db


def _summary(*, size, latency, accuracy, original_accuracy=0.9, energy=None) -> dict:
    """What a finished job stores (optimizers.job_runner): after/before ratios and both reports."""
    return {"ratios": {"size": size, "latency_p50_batch_1": latency, "energy": None},
            "before": {"accuracy": original_accuracy, "energy_j_per_1000": None},
            "after": {"accuracy": accuracy, "energy_j_per_1000": energy}}


def _run(owner, model, summary=None, *, status="succeeded", recipe="quantize", config=None) -> Experiment:
    return Experiment.objects.create(owner=owner, model=model, recipe=recipe, status=status,
                                     config=config or {"variant": "dynamic_int8"}, summary=summary or {})


@pytest.fixture
def runs(alice):
    """Five finished runs with distinct figures, a failed one with a partial summary and a queued one."""
    model = ready_model(alice, name="digits-mlp")
    return {
        # accuracy delta in points: small -0.5, tiny -3.0, fast +1.0, big -0.1, gpu -1.5
        "small": _run(alice, model, _summary(size=0.25, latency=0.9, accuracy=0.895)),
        "tiny": _run(alice, model, _summary(size=0.1, latency=1.2, accuracy=0.87), recipe="prune",
                     config={"method": "unstructured"}),
        "fast": _run(alice, model, _summary(size=0.5, latency=0.4, accuracy=0.91),
                     config={"variant": "fp8_cuda"}),
        "big": _run(alice, model, _summary(size=1.0, latency=1.0, accuracy=0.899), recipe="prune",
                    config={"method": "structured"}),
        "gpu": _run(alice, model, _summary(size=0.3, latency=0.5, accuracy=0.885, energy=12.5)),
        "failed": _run(alice, model, _summary(size=0.01, latency=0.01, accuracy=0.99), status="failed"),
        "queued": _run(alice, model, status="queued"),
    }


def _names(runs, ids) -> list[str]:
    by_pk = {e.pk: name for name, e in runs.items()}
    return [by_pk[pk] for pk in ids]


@pytest.mark.parametrize("order, expected", [
    ("size_ratio", ["tiny", "small", "gpu", "fast", "big"]),
    ("-size_ratio", ["big", "fast", "gpu", "small", "tiny"]),
    ("latency_ratio", ["fast", "gpu", "small", "big", "tiny"]),
    ("-accuracy_delta", ["fast", "big", "small", "gpu", "tiny"]),
    ("accuracy_delta", ["tiny", "gpu", "small", "big", "fast"]),
    ("energy", ["gpu"]),
])
def test_orders_by_a_result_with_runs_without_it_last(alice, alice_api, client, runs, order, expected):
    client.force_login(alice)
    # runs without the figure keep the newest-first order among themselves, after the others, either way
    tail = sorted((name for name in runs if name not in expected), key=lambda name: runs[name].pk, reverse=True)
    assert _names(runs, api_ids(alice_api, f"order={order}")) == expected + tail
    assert _names(runs, page_ids(client, f"order={order}")) == expected + tail


def test_the_default_and_created_orders(alice_api, runs):
    newest_first = sorted(runs, key=lambda name: runs[name].pk, reverse=True)
    assert _names(runs, api_ids(alice_api)) == newest_first
    assert _names(runs, api_ids(alice_api, "order=-created")) == newest_first
    assert _names(runs, api_ids(alice_api, "order=created")) == newest_first[::-1]


@pytest.mark.parametrize("query, expected", [
    ("size_ratio_max=0.3&order=size_ratio", ["tiny", "small", "gpu"]),
    ("latency_ratio_max=0.9&order=latency_ratio", ["fast", "gpu", "small"]),
    ("accuracy_drop_max=1&order=-accuracy_delta", ["fast", "big", "small"]),
    ("accuracy_drop_max=-0.5", ["fast"]),  # a negative drop asks for a gain
    ("energy_max=20", ["gpu"]), ("energy_max=10", []),
    ("size_ratio_max=0.5&accuracy_drop_max=1&order=size_ratio", ["small", "fast"]),
    ("size_ratio_max=0.5&recipe=prune", ["tiny"]),  # with the existing filters
    ("size_ratio_max=0.5&q=fp8", ["fast"]),
    ("latency_ratio_max=5&status=failed", []),  # a failed run's partial figures never count
])
def test_result_limits_combine_with_the_other_filters(alice, alice_api, client, runs, query, expected):
    client.force_login(alice)
    if "order=" not in query:
        expected = sorted(expected, key=lambda name: runs[name].pk, reverse=True)
    assert _names(runs, api_ids(alice_api, query)) == expected, query
    assert _names(runs, page_ids(client, query)) == expected, query


def test_the_order_and_the_limits_survive_paging(alice, alice_api, client):
    model = ready_model(alice)
    rows = [_run(alice, model, _summary(size=round((i % 60 + 1) / 100, 2), latency=1, accuracy=0.9))
            for i in range(130)]
    _run(alice, model, status="running")
    kept = [e for e in rows if e.summary["ratios"]["size"] <= 0.4]  # 90 runs: 40 sizes, each on 2 or 3 runs
    expected = [e.pk for e in sorted(kept, key=lambda e: (-e.summary["ratios"]["size"], -e.created_at.timestamp(),
                                                          -e.pk))]
    client.force_login(alice)
    query = "order=-size_ratio&size_ratio_max=0.4"
    pages = [page_ids(client, f"{query}&page={number}") for number in (1, 2)]
    assert [len(ids) for ids in pages] == [50, len(expected) - 50] and sum(pages, []) == expected
    page = client.get(f"/experiments/?{query}").content.decode()
    assert 'href="?order=-size_ratio&amp;size_ratio_max=0.4&amp;page=2" rel="next"' in page
    body = alice_api.get(f"/api/experiments/?{query}&limit=40").json()
    assert body["count"] == len(expected) and "order=-size_ratio" in body["next"]
    assert [e["id"] for e in body["results"]] + api_ids(alice_api, f"{query}&limit=50&offset=40") == expected


def test_the_sort_headers_toggle_and_say_which_way(alice, client, runs):
    client.force_login(alice)
    page = client.get("/experiments/?recipe=quantize&page=1").content.decode()
    headers = dict(re.findall(r'<th data-column="(\w+)" class="sortable"[^>]*><a href="([^"]+)"', page))
    # each starts with its better end first, keeps the filters and goes back to the first page
    assert headers == {"size_ratio": "?recipe=quantize&amp;order=size_ratio",
                       "latency_ratio": "?recipe=quantize&amp;order=latency_ratio",
                       "accuracy_delta": "?recipe=quantize&amp;order=-accuracy_delta",
                       "energy": "?recipe=quantize&amp;order=energy"}
    assert re.search(r'<th class="sortable" aria-sort="descending"><a href="\?recipe=quantize&amp;order=created">'
                     r'Created', page)  # newest first until told otherwise
    page = client.get("/experiments/?order=size_ratio").content.decode()
    assert re.search(r'data-column="size_ratio" class="sortable" title="[^"]+" aria-sort="ascending">'
                     r'<a href="\?order=-size_ratio">', page)
    assert page.count("aria-sort=") == 1  # only the column the list is sorted by
    page = client.get("/experiments/?order=-size_ratio").content.decode()
    assert re.search(r'aria-sort="descending"><a href="\?order=size_ratio">size ratio', page)
    assert 'name="order" value="-size_ratio"' in page  # the filter form keeps the order


def test_the_variant_and_the_results_are_shown_and_served(alice, alice_api, client, runs):
    client.force_login(alice)
    page = client.get("/experiments/").content.decode()
    row = lambda name: re.search(rf'<tr data-id="{runs[name].pk}".*?</tr>', page, re.S).group(0)  # noqa: E731
    assert '<td data-role="variant">fp8_cuda</td>' in row("fast")
    assert '<td data-role="variant">unstructured</td>' in row("tiny")
    assert re.search(r'data-column="size_ratio" class="result better">0\.25×<', row("small"))
    assert re.search(r'data-column="accuracy_delta" class="result worse">-0\.50 pts<', row("small"))
    assert re.search(r'data-column="accuracy_delta" class="result better">\+1\.00 pts<', row("fast"))
    assert re.search(r'data-column="size_ratio" class="result">1\.00×<', row("big"))  # level: no verdict
    assert re.search(r'data-column="energy" class="result">12\.50 J<', row("gpu"))
    assert re.search(r'data-column="size_ratio" class="result">—<', row("failed"))

    served = {e["id"]: e for e in alice_api.get("/api/experiments/").json()["results"]}
    assert served[runs["tiny"].pk]["variant"] == "unstructured"
    assert served[runs["small"].pk]["results"] == pytest.approx(
        {"size_ratio": 0.25, "latency_ratio": 0.9, "accuracy_delta": -0.5, "energy": None})
    assert served[runs["failed"].pk]["results"] == {"size_ratio": None, "latency_ratio": None,
                                                    "accuracy_delta": None, "energy": None}


def test_the_model_page_shows_the_variant(alice, client, runs):
    client.force_login(alice)
    page = client.get(f"/models/{runs['fast'].model_id}/").content.decode()
    assert '<td data-role="variant">fp8_cuda</td>' in page and '<td data-role="variant">structured</td>' in page


def test_bob_never_sees_alices_runs_whatever_the_order_or_limits(alice, bob, bob_api, client, runs):
    mine = _run(bob, ready_model(bob), _summary(size=0.9, latency=0.9, accuracy=0.9))
    client.force_login(bob)
    for query in ("order=size_ratio", "order=-accuracy_delta", "size_ratio_max=10", "accuracy_drop_max=100",
                  "order=energy&latency_ratio_max=10"):
        assert api_ids(bob_api, query) == [mine.pk], query
        assert page_ids(client, query) == [mine.pk], query
    assert selectors.experiment_search_for(user=bob, order="size_ratio", limits={"size_ratio": 1}).count() == 1


@pytest.mark.parametrize("query, field", [
    ("order=size", "order"), ("order=--size_ratio", "order"), ("order=summary__after", "order"),
    ("size_ratio_max=half", "size_ratio_max"), ("size_ratio_max=-1", "size_ratio_max"),
    ("latency_ratio_max=nan", "latency_ratio_max"), ("energy_max=inf", "energy_max"),
    ("accuracy_drop_max=1e999", "accuracy_drop_max"), ("accuracy_drop_max=1%25", "accuracy_drop_max"),
])
def test_a_bad_order_or_limit_is_a_400_naming_the_field(alice, alice_api, client, query, field):
    response = alice_api.get(f"/api/experiments/?{query}")
    assert response.status_code == 400 and list(response.json()) == [field], response.content
    client.force_login(alice)
    page = client.get(f"/experiments/?{query}")
    assert page.status_code == 400 and f"{field}: " in page.content.decode()


def test_the_schema_documents_the_order_and_the_limits(alice_api):
    schema = alice_api.get("/api/schema/?format=json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/experiments/"]["get"]["parameters"]}
    assert {"order", "size_ratio_max", "latency_ratio_max", "accuracy_drop_max", "energy_max", "status",
            "recipe", "model", "q", "ids", "limit", "offset"} <= set(parameters)
    assert "-accuracy_delta" in parameters["order"]["schema"]["enum"]
    assert parameters["size_ratio_max"]["schema"]["type"] == "number"
