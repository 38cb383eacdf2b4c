"""The experiment page's WebSocket: the backlog after the page's last seq, then live batches, no gap, no duplicate."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from optimizers.events import Event
from webapp import selectors
from webapp.services import experiment_group


class ExperimentConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        self.experiment_id = self.scope["url_route"]["kwargs"]["experiment_id"]
        self.last_sent = None  # no event is sent before the page says where it stands
        allowed = user is not None and user.is_authenticated and await database_sync_to_async(
            selectors.experiment_owned_by)(user=user, experiment_id=self.experiment_id)
        if not allowed:
            await self.close()  # before accept: the handshake is refused, as a 404 page would be
            return
        self.group = experiment_group(self.experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        after = _query_after(self.scope.get("query_string", b""))
        if after is not None:
            await self._resume(after)

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "resume" and isinstance(content.get("after"), int):
            await self._resume(content["after"])

    async def _resume(self, after: int):
        self.last_sent = after
        backlog = await database_sync_to_async(selectors.events_after)(
            experiment_id=self.experiment_id, after=after)
        await self._send(backlog)

    async def events_batch(self, message):
        """A live batch from the bridge (services.events.LIVE_BATCH); fill any gap from the database and drop what
        was already sent."""
        if self.last_sent is None:
            return
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
            await self.send_json({"events": page})


def _query_after(query_string: bytes) -> int | None:
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None
    try:
        return max(0, int(values[0]))
    except ValueError:
        return None
