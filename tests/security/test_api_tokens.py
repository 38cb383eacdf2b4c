"""API tokens: given for a password, stored only as a hash, expiring, and revocable one by one."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import ready_model

pytestmark = pytest.mark.django_db


def _token(username="alice", password="alice-secret-pw") -> dict:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_token_works_and_only_its_hash_is_stored(alice):
    token = _token()["token"]
    assert _client(token).get("/api/models/").status_code == 200
    stored = AuthToken.objects.get(user=alice)
    assert stored.digest == hash_token(token) != token  # the token's hash, and nothing it can be read back from
    assert token.startswith(stored.token_key) and len(stored.token_key) < len(token) // 4  # a short lookup prefix
    assert APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"}).status_code == 400


def test_a_token_expires(alice):
    answer = _token()
    expiry = AuthToken.objects.get(user=alice).expiry
    assert abs(expiry - (timezone.now() + settings.API_TOKEN_TTL)) < timedelta(minutes=1)
    AuthToken.objects.filter(user=alice).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _client(answer["token"]).get("/api/models/").status_code == 401


def test_revoking_one_token_leaves_the_others(alice):
    first, second = _token()["token"], _token()["token"]
    assert _client(first).post("/api/auth/token/revoke/").status_code == 204
    assert _client(first).get("/api/models/").status_code == 401
    assert _client(second).get("/api/models/").status_code == 200


def test_a_token_of_one_user_sees_nothing_of_another(alice, bob):
    alices = ready_model(alice, name="alices-model")
    bobs = _client(_token("bob", "bob-secret-pw")["token"])
    assert bobs.get("/api/models/").json() == []
    assert bobs.get(f"/api/models/{alices.pk}/").status_code == 404
