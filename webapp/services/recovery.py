"""Jobs whose worker died: noticed, run again from their checkpoint, or failed with "worker lost" after
SLIMFORGE_JOB_ATTEMPTS starts. Nothing stays `running` for ever.

A run is live while it is young (claimed less than `stale_s` ago: SLIMFORGE_RUN_LOST_AFTER_S, at least three
heartbeats) or while a worker that beat within `stale_s` reports it in `Worker.running` (the experiments its
main process has handed to its pool). A pool process killed mid-job drops out of that list at the next beat, a
killed worker stops beating: either way the run is no longer live. Two paths act on it:

- the claim (`experiment_claim`): a delivery of a running experiment's task takes it over only if its run is
  not live, so a duplicate delivery, or Redis redelivering a message after its visibility timeout, never runs a
  job twice at once;
- the reaper (`experiments_recover`), which every live worker runs after each heartbeat: a running experiment
  whose run is not live is queued again (its task sent anew) or, at its last attempt, failed.

An outcome is written only by the attempt that owns the experiment (`experiment_finish(attempt=...)`).
"""
import logging

from django.conf import settings
from django.db import transaction

from optimizers import events
from tasks.celery import RUN_EXPERIMENT
from webapp.clock import db_ago
from webapp.models import Experiment
from webapp.services.events import events_record
from webapp.services.experiments import experiment_finish
from webapp.services.liveness import run_is_live, stale_after_s, worker_lost_error
from webapp.services.outbox import outbox_add

log = logging.getLogger(__name__)


def experiments_recover(*, stale_s: float | None = None) -> list[int]:
    """Queue again, or fail, every running experiment whose run is not live; return their ids. Safe to run from
    every worker at once: each experiment is handled by whoever locks it first."""
    stale = stale_s if stale_s is not None else stale_after_s()
    old = db_ago(stale)
    # A plain read first, usually empty: no row is locked on a beat that finds nothing to do.
    candidates = list(Experiment.objects.filter(status=Experiment.Status.RUNNING, started_at__lt=old)
                      .values_list("pk", flat=True))
    handled = []
    for pk in candidates:
        with transaction.atomic():
            experiment = (Experiment.objects.select_for_update(skip_locked=True)
                          .filter(pk=pk, status=Experiment.Status.RUNNING, started_at__lt=old).first())
            if experiment is None or run_is_live(experiment, stale_s=stale):
                continue
            handled.append(experiment.pk)
            _recover(experiment)
    return handled


def _recover(experiment: Experiment) -> None:
    if experiment.cancel_requested_at:
        experiment_finish(experiment_id=experiment.pk, status=Experiment.Status.CANCELLED)
    elif experiment.attempt >= settings.JOB_ATTEMPTS:
        experiment_finish(experiment_id=experiment.pk, status=Experiment.Status.FAILED,
                          error=worker_lost_error(experiment.attempt))
    else:
        Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.QUEUED)
        events_record(experiment_id=experiment.pk, records=[
            events.log_event(f"The worker running attempt {experiment.attempt} stopped ({experiment.worker}); "
                             f"queued again for attempt {experiment.attempt + 1} of {settings.JOB_ATTEMPTS}.")])
        outbox_add(RUN_EXPERIMENT, experiment.pk, experiment.owner_id)
        log.warning("experiment %s: its run on %s was lost; queued again", experiment.pk, experiment.worker)
