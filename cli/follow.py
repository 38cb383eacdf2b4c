"""Follow an experiment live over its WebSocket: a progress bar, the latest metrics, its log lines, until it ends.

The socket sends every event after the sequence number the client gives, so after a dropped connection (a server
restart, a network blip) the client reconnects with the last one it saw and misses nothing, nor sees anything twice.
"""
import asyncio
import json

import websockets
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cli.client import Client

FINISHED = ("succeeded", "failed", "cancelled")
RECONNECT_S = (0.5, 1, 2, 4, 8)


class Follower:
    def __init__(self, client: Client, experiment_id: int, console: Console):
        self.client, self.experiment_id, self.console = client, experiment_id, console
        self.last_seq, self.status, self.error, self.reconnects = 0, "", "", 0
        self.metrics: dict[str, float | None] = {}

    def handle(self, event: dict, progress: Progress, task) -> None:
        if event["seq"] <= self.last_seq:
            return  # never twice, whatever the server resends
        self.last_seq = event["seq"]
        kind = event.get("kind")
        if kind == "progress" and event.get("total"):
            progress.update(task, completed=event["done"], total=event["total"],
                            description=event.get("stage") or "running")
        elif kind == "stage":
            progress.update(task, description=event["name"])
        elif kind == "metric":
            self.metrics[event["name"]] = event.get("value")
            shown = "  ".join(f"{name}={_number(value)}" for name, value in sorted(self.metrics.items())[-4:])
            progress.update(task, metrics=shown)
        elif kind == "log":
            self.console.print(f"[dim]{event.get('message', '')}[/dim]")
        elif kind == "status":
            self.status, self.error = event["status"], event.get("error", "")

    async def run(self) -> str:
        url = self.client.websocket_url(f"/ws/experiments/{self.experiment_id}/")
        headers = {"Authorization": f"Token {self.client.token}"}
        columns = [TextColumn("{task.description:>16}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[metrics]}")]
        with Progress(*columns, console=self.console) as progress:
            task = progress.add_task("waiting", total=None, metrics="")
            while self.status not in FINISHED:
                try:
                    async with websockets.connect(f"{url}?after={self.last_seq}", additional_headers=headers,
                                                  origin=self.client.url, open_timeout=10) as socket:
                        self.reconnects = 0
                        async for message in socket:
                            for event in _events(message):
                                self.handle(event, progress, task)
                            if self.status in FINISHED:
                                break
                except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake, TimeoutError) as exc:
                    if isinstance(exc, websockets.InvalidStatus) and exc.response.status_code in (403, 404):
                        raise SystemExit(f"No experiment #{self.experiment_id} of yours.") from None
                    delay = RECONNECT_S[min(self.reconnects, len(RECONNECT_S) - 1)]
                    self.reconnects += 1
                    progress.console.print(f"[yellow]connection lost ({type(exc).__name__}); resuming after event "
                                           f"{self.last_seq} in {delay} s[/yellow]")
                    await asyncio.sleep(delay)
        return self.status


def _events(message) -> list[dict]:
    body = json.loads(message)
    return body.get("events", []) if isinstance(body, dict) else []


def _number(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def follow(client: Client, experiment_id: int, console: Console) -> tuple[str, str]:
    follower = Follower(client, experiment_id, console)
    asyncio.run(follower.run())
    return follower.status, follower.error
