"""Whether a running experiment's run is still alive (the model of it: webapp.services.recovery)."""
from datetime import timedelta

from django.conf import settings

from webapp.clock import db_now
from webapp.models import Experiment, Worker


def stale_after_s() -> float:
    """SLIMFORGE_RUN_LOST_AFTER_S, and never less than three missed heartbeats (when the Workers page counts a
    worker offline)."""
    return max(3 * settings.WORKER_HEARTBEAT_S, settings.RUN_LOST_AFTER_S)


def run_is_live(experiment: Experiment, *, stale_s: float | None = None) -> bool:
    stale = timedelta(seconds=stale_s if stale_s is not None else stale_after_s())
    since = db_now() - stale
    if experiment.started_at and experiment.started_at > since:
        return True
    return Worker.objects.filter(last_heartbeat__gt=since, stopped_at__isnull=True,
                                 running__contains=[experiment.pk]).exists()


def worker_lost_error(attempts: int) -> str:
    return (f"Worker lost: the job was started {attempts} time{'s' if attempts != 1 else ''} and its worker stopped "
            "each time (killed, out of memory, or its machine went away).")
