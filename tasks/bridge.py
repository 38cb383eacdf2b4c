"""The one callback between a running job and the pages: events are stamped, batched and recorded."""
import time
from collections.abc import Callable

from optimizers.events import Event
from webapp import services


class EventBridge:
    """Collects a job's events and writes them in small batches (each batch is then pushed live)."""

    # An event is written at once unless a batch went out less than flush_seconds ago; then at the next tick (the
    # sandbox pump ticks at least every 50 ms). flush_seconds is kept below the pump's wake-up on purpose: at 50 ms
    # a steady stream locked into writing each event one wake-up late (p50 +50 ms in bench/live.py). Bursts still
    # batch: at most 50 small transactions a second per running job.
    def __init__(self, experiment_id: int, *, flush_seconds: float = 0.02, max_batch: int = 200):
        self.experiment_id = experiment_id
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self._pending: list[Event] = []
        self._last_flush = time.monotonic()
        self._watchers: list[Callable[[Event], None]] = []

    def watch(self, watcher: Callable[[Event], None]) -> None:
        """`watcher` sees every event as it passes (the telemetry sampler follows the job's stage this way)."""
        self._watchers.append(watcher)

    def emit(self, record: Event) -> None:
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
