"""Red team, through the web: Bob guesses Alice's ids on every route, page, download and WebSocket.

The routes are not listed by hand: the URL conf and the WebSocket router are walked, so a route added later is
tried too, and a route whose id this file does not know fails the test until it is added here. For every route
with an id, Bob (signed in on the pages, and with an API token) must get exactly what he gets for an id that does
not exist: a 404 for GET, and for every other method no success and no difference. Routes without an id must not
show Alice's things, whatever ids Bob puts in their query. Cross-site POSTs: Alice's own session, without the CSRF
token a page of hers would carry, changes nothing on any route.
"""
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import experiment_with_artifact
from webapp.asgi import application
from webapp.live.routing import websocket_urlpatterns
from webapp.models import Chain, ChainStep, Dataset, Experiment

pytestmark = pytest.mark.django_db(transaction=True)
CANARY = "alices-private-canary-5e1d"
MISSING = 987654321
# The POST-only routes a stranger may call: they take a password in the body, so no ambient session is used.
NO_SESSION_AUTHORITY = {"api-token"}


def _routes(patterns, prefix=""):
    """(name, route text with <converter:name> placeholders) of every route, admin's aside."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) == "admin/":
                continue  # Django's admin: staff only, tried in test_the_admin_is_for_staff_only
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield pattern.name, prefix + str(pattern.pattern)


@pytest.fixture
def alices_things(alice):
    experiment, artifact = experiment_with_artifact(alice)
    experiment.model.name = CANARY
    experiment.model.save()
    dataset = Dataset.objects.create(owner=alice, name=CANARY, kind="digits", status="ready",
                                     info={"samples": 10, "previews": ["0.png"]})
    token, _ = AuthToken.objects.create(alice)
    chain = Chain.objects.create(owner=alice, model=experiment.model, name=CANARY, status="failed")
    ChainStep.objects.create(chain=chain, index=0, recipe="quantize", config={})
    Experiment.objects.filter(pk=experiment.pk).update(chain=chain, chain_index=0)
    return {"model_id": experiment.model_id, "experiment_id": experiment.id, "artifact_id": artifact.id,
            "dataset_id": dataset.id, "name": "0.png", "token_key": token.token_key, "chain_id": chain.id}


def _fill(route: str, values: dict) -> str:
    def value(match):
        name = match.group(2)
        assert name in values, f"the route {route!r} takes <{name}>: teach tests/security/test_other_users_ids.py it"
        return str(values[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", value, route)


def _bob_clients(bob):
    page = Client()
    page.force_login(bob)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(bob)[1]}")
    return {"page session": page, "API token": api}


def test_every_route_with_an_id_answers_bob_as_if_alices_thing_did_not_exist(alices_things, bob):
    routes = [(name, route) for name, route in _routes(get_resolver().url_patterns) if "<" in route]
    assert len(routes) >= 10
    missing = {key: MISSING for key in alices_things} | {"name": "0.png"}
    for how, client in _bob_clients(bob).items():
        for name, route in routes:
            alices, nowhere = _fill(route, alices_things), _fill(route, missing)
            for method in ("get", "post", "put", "patch", "delete"):
                answer = getattr(client, method)(alices)
                expected = getattr(client, method)(nowhere)
                where = f"{how}: {method.upper()} {alices} ({name})"
                assert answer.status_code == expected.status_code, where
                if answer.status_code == 302:  # a page, to a client signed in only on the API: the login page
                    assert answer["Location"].startswith(reverse(settings.LOGIN_URL)), where
                    continue
                # 405: the route takes no GET at all, for anyone's id (and the same for a missing one, above).
                assert answer.status_code in (404, 405) if method == "get" else answer.status_code >= 400, where
                assert CANARY not in answer.content.decode(errors="replace"), where


def test_routes_without_an_id_never_show_alices_things(alices_things, bob):
    routes = [(name, route) for name, route in _routes(get_resolver().url_patterns) if "<" not in route]
    ids = alices_things
    query = (f"?ids={ids['experiment_id']}&model={ids['model_id']}&dataset={ids['dataset_id']}"
             f"&experiment={ids['experiment_id']}&q=%23{ids['experiment_id']}")
    for how, client in _bob_clients(bob).items():
        for name, route in routes:
            answer = client.get("/" + route + query)
            where = f"{how}: GET /{route}{query} ({name})"
            assert answer.status_code < 500, where
            assert CANARY not in answer.content.decode(errors="replace"), where


def test_alices_websocket_refuses_bob(alices_things, bob):
    bob_cookie = Client()
    bob_cookie.force_login(bob)
    cookie = f"{settings.SESSION_COOKIE_NAME}={bob_cookie.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    routes = [str(pattern.pattern) for pattern in websocket_urlpatterns]
    assert routes

    async def connect(path):
        communicator = WebsocketCommunicator(application, path,
                                             headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)])
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        else:
            await communicator.wait()
        return connected

    for route in routes:
        assert not async_to_sync(connect)(_fill(route, alices_things) + "?after=0"), route


def test_the_admin_is_for_staff_only(alices_things, bob):
    client = Client()
    client.force_login(bob)
    for path in ("/admin/", f"/admin/webapp/uploadedmodel/{alices_things['model_id']}/change/"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/"), path


def test_cross_site_posts_change_nothing(alices_things, alice):
    """A page on another site can make Alice's browser POST with her cookies, but not with her CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    routes = list(_routes(get_resolver().url_patterns))
    for name, route in routes:
        if name in NO_SESSION_AUTHORITY:
            continue
        path = _fill(route, alices_things)
        answer = client.post(path, {"recipe": "quantize", "name": "x"}, HTTP_ORIGIN="https://evil.example",
                             HTTP_REFERER="https://evil.example/")
        assert answer.status_code in (403, 405), f"POST {path} ({name}): {answer.status_code}"
    assert Dataset.objects.filter(name="x").count() == 0
