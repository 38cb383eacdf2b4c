"""The worker's side of the event-latency benchmark, in its own process as a worker is.

It sends events through the product's EventBridge at a job's pace and ticks it as the sandbox pump does,
so batching, the database write and the channel-layer push are the real ones.

    python bench/live_emitter.py <experiment_id> <events> <per_second>
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from tasks.bridge import EventBridge  # noqa: E402
from tasks.sandbox import PUMP_WAKE_S  # noqa: E402


def emit(experiment_id: int, events: int, per_second: float) -> None:
    bridge = EventBridge(experiment_id)
    gap = 1.0 / per_second
    next_emit = time.monotonic()
    sent = 0
    while sent < events:
        now = time.monotonic()
        if now >= next_emit:
            bridge.emit({"kind": "resource", "name": "job/cpu_percent", "value": float(sent % 100)})
            sent += 1
            next_emit += gap
        bridge.tick()
        time.sleep(max(0.0, min(PUMP_WAKE_S, next_emit - time.monotonic())))
    bridge.flush()


if __name__ == "__main__":
    emit(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
