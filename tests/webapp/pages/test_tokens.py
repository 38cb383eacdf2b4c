"""The API tokens page: a new token shown once and working on the API, listed by its first characters, revoked
with a button; another user's token cannot be revoked (404)."""
import pytest
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_make_use_and_revoke_a_token_from_the_page(alice, bob, client):
    client.force_login(alice)
    assert 'id="no-tokens"' in client.get("/account/tokens/").content.decode()
    page = client.post("/account/tokens/").content.decode()
    token = page.split('<code id="new-token-value">', 1)[1].split("</code>", 1)[0]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/models/").status_code == 200
    listed = client.get("/account/tokens/").content.decode()
    assert token not in listed and f"<code>{token[:8]}…</code>" in listed  # never shown again whole
    key = AuthToken.objects.get(user=alice).token_key
    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.post(f"/account/tokens/{key}/revoke/").status_code == 404
    response = client.post(f"/account/tokens/{key}/revoke/", follow=True)
    assert f"Revoked the token starting {key[:8]}" in response.content.decode()
    assert api.get("/api/models/").status_code == 401


def test_a_user_has_a_bounded_number_of_tokens(alice, client):
    from webapp.services.tokens import MAX_TOKENS

    client.force_login(alice)
    for _ in range(MAX_TOKENS):
        AuthToken.objects.create(alice)
    response = client.post("/account/tokens/", follow=True)
    assert f"You have {MAX_TOKENS} live tokens" in response.content.decode()
    assert AuthToken.objects.filter(user=alice).count() == MAX_TOKENS


def test_the_api_endpoint_keeps_the_same_bound(alice):
    from webapp.services.tokens import MAX_TOKENS

    for _ in range(MAX_TOKENS):
        AuthToken.objects.create(alice)
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "alice-secret-pw"},
                                format="json")
    assert response.status_code == 409 and f"You have {MAX_TOKENS} live tokens" in response.json()["detail"]
