"""The one callback between a running job and the pages: events are stamped, batched and recorded."""
import time
from collections.abc import Callable

from webapp import services


class EventBridge:
    """Collects a job's events and writes them in small batches (each batch is then pushed live)."""

    # A page sees an event within about flush_seconds (issue 5: p95 emit-to-receipt <= 100 ms); each flush is one
    # small transaction, so 20 a second per running job is cheap.
    def __init__(self, experiment_id: int, *, flush_seconds: float = 0.05, max_batch: int = 200):
        self.experiment_id = experiment_id
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()
        self._watchers: list[Callable[[dict], None]] = []

    def watch(self, watcher: Callable[[dict], None]) -> None:
        """`watcher` sees every event as it passes (the telemetry sampler follows the job's stage this way)."""
        self._watchers.append(watcher)

    def emit(self, record: dict) -> None:
        self._pending.append({"t": time.time(), **record})
        for watcher in self._watchers:
            watcher(record)
        if len(self._pending) >= self.max_batch:
            self.flush()

    def tick(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        services.events_record(experiment_id=self.experiment_id, records=batch)
