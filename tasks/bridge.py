"""The one callback between a running job and the pages: events are stamped, batched and recorded."""
import logging
import time
from collections.abc import Callable

from optimizers.events import Event
from tasks.db_retry import DB_ERRORS, forget_connection
from webapp import services

log = logging.getLogger(__name__)
DB_RETRY_S = 1.0  # while the database is down, a write is tried again this often; the events wait, in order


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
        self._db_down_since: float | None = None

    def watch(self, watcher: Callable[[Event], None]) -> None:
        """`watcher` sees every event as it passes (the telemetry sampler follows the job's stage this way)."""
        self._watchers.append(watcher)

    def emit(self, record: Event) -> None:
        self._pending.append({"t": time.time(), **record})
        for watcher in self._watchers:
            watcher(record)
        if len(self._pending) >= self.max_batch and (
                self._db_down_since is None or time.monotonic() - self._last_flush >= DB_RETRY_S):
            self.flush()

    def tick(self) -> None:
        wait = DB_RETRY_S if self._db_down_since is not None else self.flush_seconds
        if self._pending and time.monotonic() - self._last_flush >= wait:
            self.flush()

    def flush(self, *, raise_errors: bool = False) -> None:
        """Write what is pending. While the database is down the events stay pending, in order, and the job goes on;
        `raise_errors` (the job's last flush, retried by its caller) lets the error through instead."""
        batch, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        try:
            services.events_record(experiment_id=self.experiment_id, records=batch)
        except DB_ERRORS:
            self._pending = batch + self._pending
            forget_connection()
            if self._db_down_since is None:
                self._db_down_since = time.monotonic()
                log.warning("experiment %s: the database is unreachable; its events wait", self.experiment_id)
            if raise_errors:
                raise
            return
        if self._db_down_since is not None:
            log.info("experiment %s: the database is back after %.1f s; %d events written", self.experiment_id,
                     time.monotonic() - self._db_down_since, len(batch))
            self._db_down_since = None
