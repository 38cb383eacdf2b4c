"""/ws/experiments/{id}/ through the real ASGI application and the Redis channel layer."""
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from tests.factories import experiment_with_artifact
from webapp import services
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _connect(user, experiment_id, after=None):
    path = f"/ws/experiments/{experiment_id}/" + (f"?after={after}" if after is not None else "")
    headers = [(b"origin", b"http://127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(_session_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    if not connected:
        await communicator.wait()  # let the refused application finish (and close its database work)
    return communicator, connected


async def _receive_seqs(communicator, count) -> list[int]:
    seqs = []
    while len(seqs) < count:
        message = await communicator.receive_json_from(timeout=5)
        seqs += [event["seq"] for event in message["events"]]
    return seqs


def _record(experiment_id, n):
    return services.events_record(experiment_id=experiment_id,
                                  records=[{"kind": "metric", "name": "train/loss", "step": i, "value": 1 / (i + 1)}
                                           for i in range(n)])


def test_backlog_then_live_events_then_resume_without_gap_or_duplicate(alice):
    experiment, _ = experiment_with_artifact(alice)
    _record(experiment.pk, 3)

    async def scenario():
        first, connected = await _connect(alice, experiment.pk, after=0)
        assert connected
        assert await _receive_seqs(first, 3) == [1, 2, 3]
        await database_sync_to_async(_record)(experiment.pk, 2)
        assert await _receive_seqs(first, 2) == [4, 5]
        await first.disconnect()
        await database_sync_to_async(_record)(experiment.pk, 3)  # written while the page was away
        second, _ = await _connect(alice, experiment.pk, after=5)
        assert await _receive_seqs(second, 3) == [6, 7, 8]
        await database_sync_to_async(_record)(experiment.pk, 1)
        assert await _receive_seqs(second, 1) == [9]
        assert await second.receive_nothing(timeout=0.3)
        await second.disconnect()

    async_to_sync(scenario)()


def test_resume_message_after_connect(alice):
    experiment, _ = experiment_with_artifact(alice)
    _record(experiment.pk, 4)

    async def scenario():
        page, connected = await _connect(alice, experiment.pk)
        assert connected and await page.receive_nothing(timeout=0.2)  # nothing until it says where it stands
        await page.send_json_to({"type": "resume", "after": 2})
        assert await _receive_seqs(page, 2) == [3, 4]
        await page.disconnect()

    async_to_sync(scenario)()


def test_bob_and_anonymous_are_refused(alice, bob):
    experiment, _ = experiment_with_artifact(alice)

    async def scenario():
        for user in (bob, None):
            page, connected = await _connect(user, experiment.pk, after=0)
            assert not connected
        _, connected = await _connect(alice, experiment.pk + 1000, after=0)
        assert not connected

    async_to_sync(scenario)()


def _token_of(user) -> str:
    from knox.models import AuthToken

    return AuthToken.objects.create(user)[1]


@pytest.mark.parametrize("whose", ["alice", "bob", "nobody"])
def test_an_api_token_opens_the_socket_of_its_owners_experiments_only(alice, bob, whose):
    """The command line's follow authenticates with the API token header; Bob's token, or a made-up one, is refused
    exactly like no login."""
    experiment, _ = experiment_with_artifact(alice)
    _record(experiment.pk, 2)
    token = {"alice": lambda: _token_of(alice), "bob": lambda: _token_of(bob), "nobody": lambda: "f" * 64}[whose]()

    async def scenario():
        headers = [(b"origin", b"http://127.0.0.1"), (b"authorization", f"Token {token}".encode())]
        communicator = WebsocketCommunicator(application, f"/ws/experiments/{experiment.pk}/?after=0", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        if whose == "alice":
            assert connected and await _receive_seqs(communicator, 2) == [1, 2]
            await communicator.disconnect()
        else:
            assert not connected
            await communicator.wait()

    async_to_sync(scenario)()


def test_the_channel_layer_waits_longer_than_its_blocking_read(settings):
    """A page's socket must not die of the channel layer's own 5-second wait (redis-py's default read timeout is the
    same 5 s: under load the two raced, bench/load.py)."""
    from channels_redis.core import RedisChannelLayer

    host = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    assert host["socket_timeout"] > RedisChannelLayer.brpop_timeout + 10
