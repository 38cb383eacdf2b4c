"""/experiments/ and GET /api/experiments/: filters, search, pages of 50, constant queries, owners only."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ready_model
from tests.webapp.pages.list_ids import api_ids, page_ids
from webapp import selectors
from webapp.models import Experiment

pytestmark = pytest.mark.django_db


def _make(owner, model, count=1, recipe="quantize", config=None, **fields) -> list[Experiment]:
    config = config if config is not None else {"variant": "dynamic_int8"}
    return Experiment.objects.bulk_create(
        [Experiment(owner=owner, model=model, recipe=recipe, config=config, **fields) for _ in range(count)])


@pytest.fixture
def mixed(alice):
    """Two models, three statuses, two recipes: one row per combination that the tests pick from."""
    mlp, cnn = ready_model(alice, name="digits-mlp"), ready_model(alice, name="tiny-cnn")
    return {
        "queued": _make(alice, mlp)[0],
        "running": _make(alice, mlp, status="running", progress=0.4, stage="calibrate")[0],
        "static": _make(alice, cnn, config={"variant": "static_int8"}, status="succeeded")[0],
        "prune": _make(alice, cnn, recipe="prune", config={"method": "structured"}, status="failed")[0],
        "models": (mlp, cnn),
    }


def test_login_is_needed(client):
    assert client.get("/experiments/").status_code == 302
    assert client.get("/api/experiments/").status_code in (401, 403)


def test_filters_by_status_recipe_and_model_on_the_page_and_the_api(alice, alice_api, client, mixed):
    client.force_login(alice)
    mlp, cnn = mixed["models"]
    cases = [
        ("", ["prune", "static", "running", "queued"]),  # newest first
        ("status=running", ["running"]),
        ("recipe=prune", ["prune"]),
        (f"model={cnn.pk}", ["prune", "static"]),
        (f"model={mlp.pk}&status=queued", ["queued"]),
        (f"model={mlp.pk}&recipe=prune", []),
    ]
    for query, names in cases:
        expected = [mixed[name].pk for name in names]
        assert api_ids(alice_api, query) == expected, query
        assert page_ids(client, query) == expected, query


def test_search_covers_model_name_recipe_variant_and_id(alice, alice_api, client, mixed):
    client.force_login(alice)
    cases = [("q=TINY", ["prune", "static"]), ("q=prune", ["prune"]), ("q=static_int8", ["static"]),
             (f"q=%23{mixed['queued'].pk}", ["queued"]), ("q=nothing-like-this", [])]
    for query, names in cases:
        expected = [mixed[name].pk for name in names]
        assert api_ids(alice_api, query) == expected, query
        assert page_ids(client, query) == expected, query


def test_the_page_shows_live_rows_with_badges_progress_and_compare_boxes(alice, client, mixed):
    client.force_login(alice)
    page = client.get("/experiments/").content.decode()
    running = mixed["running"].pk
    assert f'<tr data-id="{running}" data-status="running">' in page
    assert 'class="status running"' in page and 'value="0.4"' in page and "calibrate" in page
    assert f'name="ids" value="{running}" form="compare-form"' in page and "js/experiments.js" in page
    assert '<a href="/experiments/">Experiments</a>' in page  # first in the nav


def test_pages_of_50_whose_links_keep_the_filters(alice, alice_api, client):
    model = ready_model(alice)
    rows = _make(alice, model, 120, status="succeeded") + _make(alice, model, 3)
    newest_first = [e.pk for e in sorted(rows[:120], key=lambda e: (e.created_at, e.pk), reverse=True)]
    client.force_login(alice)
    seen = [page_ids(client, f"status=succeeded&page={number}") for number in (1, 2, 3)]
    assert [len(ids) for ids in seen] == [50, 50, 20] and sum(seen, []) == newest_first
    page = client.get("/experiments/?status=succeeded&page=2").content.decode()
    assert "page 2 of 3" in page and 'href="?status=succeeded&amp;page=3" rel="next"' in page

    body = alice_api.get("/api/experiments/?status=succeeded").json()
    assert body["count"] == 120 and len(body["results"]) == 50
    assert "status=succeeded" in body["next"] and "offset=50" in body["next"] and body["previous"] is None
    assert api_ids(alice_api, "status=succeeded&offset=100") == newest_first[100:]


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert call().status_code == 200
    return len(captured)


def test_the_number_of_queries_does_not_grow_with_the_rows(alice, alice_api, client):
    model = ready_model(alice)
    _make(alice, model, 5)
    client.force_login(alice)
    few = (_queries(lambda: client.get("/experiments/")), _queries(lambda: alice_api.get("/api/experiments/")))
    other = ready_model(alice, name="other")
    _make(alice, model, 100, status="running")
    _make(alice, other, 100, recipe="prune", config={"method": "unstructured"})
    many = (_queries(lambda: client.get("/experiments/")), _queries(lambda: alice_api.get("/api/experiments/")))
    assert few == many, (few, many)
    # page: session, user, count, rows with their model (, models | artifacts); API: the token, its user (knox
    # finds a token by its key's prefix, then checks its hash), count, rows with their model
    assert many[0] <= 6 and many[1] <= 5


def test_bob_sees_none_of_alices_experiments(alice, bob, bob_api, client, mixed):
    client.force_login(bob)
    mlp, _ = mixed["models"]
    ids = ",".join(str(mixed[name].pk) for name in ("queued", "running", "static"))
    for query in ("", f"model={mlp.pk}", f"ids={ids}", f"q=%23{mixed['queued'].pk}", "q=digits"):
        assert api_ids(bob_api, query) == [], query
        assert page_ids(client, query) == [], query
    assert bob_api.get("/api/experiments/").json()["count"] == 0
    assert "digits-mlp" not in client.get("/experiments/").content.decode()  # not even in the model filter


def test_ids_select_the_rows_a_page_polls(alice_api, mixed):
    wanted = [mixed["running"].pk, mixed["queued"].pk]
    assert api_ids(alice_api, f"ids={wanted[1]},{wanted[0]}") == wanted  # newest first, whatever the order asked


@pytest.mark.parametrize("query, field", [
    ("status=paused", "status"), ("recipe=teleport", "recipe"), ("model=abc", "model"), ("model=-1", "model"),
    ("ids=1,x", "ids"), ("ids=99999999999999999999999", "ids"), ("model=1%C2%B2", "model"),
])
def test_a_bad_filter_is_a_400_naming_the_field(alice, alice_api, client, query, field):
    response = alice_api.get(f"/api/experiments/?{query}")
    assert response.status_code == 400 and list(response.json()) == [field], response.content
    client.force_login(alice)
    page = client.get(f"/experiments/?{query}")
    assert page.status_code == 400 and f"{field}: " in page.content.decode()


def test_a_page_number_out_of_range_shows_the_last_page(alice, client):
    model = ready_model(alice)
    _make(alice, model, 60)
    client.force_login(alice)
    assert len(page_ids(client, "page=9")) == 10 and len(page_ids(client, "page=x")) == 50


def test_the_page_query_uses_the_owner_indexes_at_10000_rows(alice, bob):
    models = [ready_model(alice, name=f"m{i}") for i in range(4)]
    statuses, recipes = Experiment.Status.values, ["quantize", "prune"]
    Experiment.objects.bulk_create([
        Experiment(owner=alice, model=models[i % 4], recipe=recipes[i % 2], status=statuses[i % 5], config={})
        for i in range(10_000)], batch_size=2000)
    _make(bob, ready_model(bob), 500)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webapp_experiment")
    cases = {"experiment_owner_created": {}, "experiment_owner_status": {"status": "running"},
             "experiment_owner_recipe": {"recipe": "prune"}, "experiment_owner_model": {"model_id": models[2].pk}}
    for index, filters in cases.items():
        page = selectors.experiment_search_for(user=alice, **filters)[:50]
        plan = page.explain()
        assert index in plan and "Seq Scan on webapp_experiment" not in plan, (filters, plan)
