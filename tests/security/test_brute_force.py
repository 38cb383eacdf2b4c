"""Red team, against the login: guessing passwords stops after a few tries, per account and per address."""
import pytest
from django.conf import settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
LIMIT = settings.AXES_FAILURE_LIMIT


def _login(client, username, password, address="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_guessing_one_accounts_password_locks_that_account(alice, client):
    for _ in range(LIMIT - 1):
        assert _login(client, "alice", "wrong-guess").status_code == 200  # the form again, with its error
    assert _login(client, "alice", "wrong-guess").status_code == 429  # the last failure allowed locks it
    # The right password, from another address, is refused too: the account is locked out.
    response = _login(client, "alice", "alice-secret-pw", address="10.0.0.2")
    assert response.status_code == 429 and f"Too many failed logins ({LIMIT} in a row)" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_guessing_from_one_address_locks_that_address(alice, bob, client):
    for index in range(LIMIT):
        _login(client, f"nobody{index}", "guess", address="10.0.0.9")
    assert _login(client, "bob", "bob-secret-pw", address="10.0.0.9").status_code == 429
    assert _login(client, "bob", "bob-secret-pw", address="10.0.0.10").status_code == 302  # elsewhere: fine


def test_a_success_resets_the_count(alice, client):
    for _ in range(LIMIT - 1):
        _login(client, "alice", "wrong-guess")
    assert _login(client, "alice", "alice-secret-pw").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        _login(client, "alice", "wrong-guess")
    assert _login(client, "alice", "alice-secret-pw").status_code == 302


def test_the_api_token_endpoint_is_limited_too(alice):
    api = APIClient(REMOTE_ADDR="10.0.0.3")
    for _ in range(LIMIT):
        assert api.post("/api/auth/token/", {"username": "alice", "password": "nope"}).status_code == 400
    # Locked out: the right password gets no token (from this address or any other).
    for address in ("10.0.0.3", "10.0.0.4"):
        response = APIClient(REMOTE_ADDR=address).post("/api/auth/token/",
                                                       {"username": "alice", "password": "alice-secret-pw"})
        assert response.status_code in (400, 429) and "token" not in response.json()
