"""The one callback between a running job and the pages: events are stamped, batched and recorded."""
import time

from webapp import services


class EventBridge:
    """Collects a job's events and writes them in small batches (each batch is then pushed live)."""

    def __init__(self, experiment_id: int, *, flush_seconds: float = 0.25, max_batch: int = 200):
        self.experiment_id = experiment_id
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()

    def emit(self, record: dict) -> None:
        self._pending.append({"t": time.time(), **record})
        if len(self._pending) >= self.max_batch:
            self.flush()

    def resource(self, cpu_percent: float, rss_mb: float) -> None:
        self.emit({"kind": "resource", "name": "job/cpu_percent", "value": round(cpu_percent, 1)})
        self.emit({"kind": "resource", "name": "job/rss_mb", "value": round(rss_mb, 1)})

    def tick(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        services.events_record(experiment_id=self.experiment_id, records=batch)
