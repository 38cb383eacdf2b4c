"""Workers: each Celery worker upserts its own row every few seconds, and marks it stopped on a clean shutdown."""
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.clock import ClockTimestamp, db_now
from webapp.models import Experiment, Worker


def _running_experiment_id(worker_name: str) -> int | None:
    # The claim records the Celery node name; with several pool processes the newest job stands for the worker.
    running = Experiment.objects.filter(worker=worker_name, status=Experiment.Status.RUNNING)
    return running.order_by("-started_at").values_list("pk", flat=True).first()


def worker_heartbeat(*, name: str, host: str, pid: int, started_at: datetime, queues: list[str],
                     devices: list[dict], load: dict, isolation: str = "", running: list[int] = (),
                     hosting: list[int] = ()) -> Worker:
    """One beat: who the worker is, what it serves, how loaded its machine is, which job it runs, and which
    multi-host jobs it lends its devices to."""
    if not name or len(name) > 255:
        raise ValidationError({"name": "A worker needs its Celery node name (at most 255 characters)."})
    now = db_now()
    # `started_at` is the worker machine's clock, as this call (made in the worker) reads it: kept as the database's,
    # so a worker's start (the Workers API's started_at) is right on a machine whose clock drifted.
    started_at = now - (timezone.now() - started_at)
    with transaction.atomic():
        worker, _ = Worker.objects.update_or_create(name=name, defaults={
            "host": host[:255], "pid": pid, "queues": list(queues), "devices": list(devices), "load": dict(load),
            "isolation": isolation[:500],
            "started_at": started_at, "last_heartbeat": now, "stopped_at": None,
            "current_experiment_id": _running_experiment_id(name), "running": sorted(set(running)),
            "hosting": sorted(set(hosting)),
        })
    return worker


def worker_stopped(*, name: str) -> None:
    """A clean shutdown: the page says "stopped", not "offline", and shows no current job."""
    Worker.objects.filter(name=name).update(stopped_at=ClockTimestamp(), current_experiment=None, running=[],
                                            hosting=[])
