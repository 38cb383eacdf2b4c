"""The OpenAPI schema: valid OpenAPI 3, every API route in it (walked from the URL conf, so a new route cannot be
left out), for signed-in users only; and its documentation page, served with its own files (no CDN)."""
import re

import pytest
from django.urls import URLPattern, get_resolver
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db
NOT_DOCUMENTED = {"api/schema/", "api/docs/"}  # the schema and its page themselves


def _api_routes() -> set[str]:
    routes = {str(p.pattern) for p in get_resolver().url_patterns if isinstance(p, URLPattern)}
    return {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route) for route in routes
            if route.startswith("api/") and route not in NOT_DOCUMENTED}


def test_the_schema_is_valid_and_lists_every_api_route(alice_api):
    response = alice_api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on anything OpenAPI 3 does not allow
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "Slimforge API"
    assert _api_routes() - set(schema["paths"]) == set()
    assert len(_api_routes()) >= 20
    detail = schema["paths"]["/api/experiments/{experiment_id}/"]
    assert {"get", "patch", "delete"} <= set(detail)
    assert "ExperimentOut" in str(detail["get"]["responses"]["200"])


def test_the_schema_and_its_page_are_for_signed_in_users(client, alice):
    assert client.get("/api/schema/").status_code in (401, 403)
    page = client.get("/api/docs/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    html = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr" not in html and "<script>" not in html  # its script comes as a file: the CSP allows it
    script = client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_generator_can_type_every_view():
    """No view is left for drf-spectacular to guess at: a new view without a serializer or @extend_schema
    (webapp/api/schema.py) fails here, as `manage.py spectacular --fail-on-warn` would."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, f"{GENERATOR_STATS._warn_cache}, {GENERATOR_STATS._error_cache}"
