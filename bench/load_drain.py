"""The burst benchmark's stand-in for the workers: it takes run-experiment tasks from the real queue, claims each
through the product's `experiment_claim` (the atomic UPDATE a worker runs), and finishes it at once through
`experiment_finish`, which lets the outbox send the owner's next job, as a worker whose jobs take no time would.
It records every claim, with its answer, as one JSON line.

    python bench/load_drain.py <claims.jsonl> <idle seconds before it stops>
"""
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from kombu import Queue  # noqa: E402

from tasks.celery import RUN_EXPERIMENT, app  # noqa: E402
from webapp import services  # noqa: E402


def drain(out: Path, idle_s: float) -> None:
    name = f"drain-{os.getpid()}@{socket.gethostname()}"
    last_message = time.monotonic()
    with app.connection_for_read() as connection, open(out, "a") as record:
        def handle(body, message):
            nonlocal last_message
            last_message = time.monotonic()
            if message.headers.get("task") == RUN_EXPERIMENT:
                experiment_id = body[0][0]
                attempt = services.experiment_claim(experiment_id=experiment_id, worker=name)
                record.write(json.dumps({"id": experiment_id, "attempt": attempt, "t": time.time(),
                                         "drain": name}) + "\n")
                record.flush()
                if attempt:
                    services.experiment_finish(experiment_id=experiment_id, status="succeeded", attempt=attempt)
            message.ack()

        queue = Queue(settings.CELERY_TASK_DEFAULT_QUEUE)
        with connection.Consumer(queue, callbacks=[handle], accept=["json"], prefetch_count=1):
            while time.monotonic() - last_message < idle_s:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    continue


if __name__ == "__main__":
    drain(Path(sys.argv[1]), float(sys.argv[2]))
