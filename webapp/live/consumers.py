"""The experiment page's WebSocket: the backlog after the page's last seq, then live batches, no gap, no duplicate.

The channel layer (Redis) is the fast path, the database the truth. When no live batch has come for CATCH_UP_S (Redis
restarted and forgot the group, or a push was lost), the socket joins its group again and sends what the database
has after the last event it sent: a page stays complete through a Redis restart without reloading.
"""
import asyncio
import contextlib
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from optimizers.events import FINISHED, STATUS, Event
from webapp import selectors
from webapp.services import experiment_group

log = logging.getLogger(__name__)
CATCH_UP_S = 5.0


class ExperimentConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        self.experiment_id = self.scope["url_route"]["kwargs"]["experiment_id"]
        self.last_sent = None  # no event is sent before the page says where it stands
        self.sending = asyncio.Lock()  # live batches and the catch-up never interleave their sends
        self.last_live = time.monotonic()
        self.finished = False  # the final status event was sent: nothing more will come
        allowed = user is not None and user.is_authenticated and await database_sync_to_async(
            selectors.experiment_owned_by)(user=user, experiment_id=self.experiment_id)
        if not allowed:
            await self.close()  # before accept: the handshake is refused, as a 404 page would be
            return
        self.group = experiment_group(self.experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.catch_up = asyncio.create_task(self._catch_up_loop())
        after = _query_after(self.scope.get("query_string", b""))
        if after is not None:
            await self._resume(after)

    async def disconnect(self, code):
        if hasattr(self, "catch_up"):
            self.catch_up.cancel()
        if hasattr(self, "group"):
            with contextlib.suppress(Exception):  # Redis may be the reason the socket closes
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _catch_up_loop(self):
        while not self.finished:
            await asyncio.sleep(CATCH_UP_S)
            if self.last_sent is None or time.monotonic() - self.last_live < CATCH_UP_S:
                continue
            try:
                await self.channel_layer.group_add(self.group, self.channel_name)  # idempotent; a new Redis lacks it
            except Exception:  # noqa: BLE001 - Redis is still down: the database below still fills the page
                log.info("experiment %s: the channel layer is unreachable; catching up from the database",
                         self.experiment_id)
            await self._resume(self.last_sent)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "resume" and isinstance(content.get("after"), int):
            await self._resume(content["after"])

    async def _resume(self, after: int):
        async with self.sending:
            self.last_sent = after
            backlog = await database_sync_to_async(selectors.events_after)(
                experiment_id=self.experiment_id, after=after)
            await self._send(backlog)

    async def events_batch(self, message):
        """A live batch from the bridge (services.events.LIVE_BATCH); fill any gap from the database and drop what
        was already sent."""
        self.last_live = time.monotonic()
        if self.last_sent is None:
            return
        async with self.sending:
            events = [e for e in message["events"] if e["seq"] > self.last_sent]
            if events and events[0]["seq"] > self.last_sent + 1:
                missing = await database_sync_to_async(selectors.events_between)(
                    experiment_id=self.experiment_id, after=self.last_sent, before=events[0]["seq"])
                events = missing + events
            await self._send(events)

    async def _send(self, events: list[Event]):
        while events:  # the backlog can be long: send it in pages
            page, events = events[:1000], events[1000:]
            self.last_sent = page[-1]["seq"]
            self.finished = self.finished or any(e["kind"] == STATUS and e.get("status") in FINISHED for e in page)
            await self.send_json({"events": page})


def _query_after(query_string: bytes) -> int | None:
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None
    try:
        return max(0, int(values[0]))
    except ValueError:
        return None
