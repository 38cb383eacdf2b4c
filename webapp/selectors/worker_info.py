"""What a viewer may know about a worker: its state from the heartbeat's age, and its job only if it is theirs.

Workers are shared, so everyone sees them; a job is private, so another user's job is only "busy".
The rows are plain values, not model instances, so no template or serializer can reach the job behind them.
"""
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from webapp.models import Experiment, Worker

ONLINE, OFFLINE, STOPPED = "online", "offline", "stopped"


@dataclass(frozen=True)
class OwnJob:
    id: int
    recipe: str
    model: str
    progress: float
    stage: str
    lends: bool = False  # a further host of this multi-host job: its devices train the job's replicas


@dataclass(frozen=True)
class BusyElsewhere:
    """The worker runs a job of another user: nothing about it is told."""


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    queues: list
    devices: list
    load: dict
    isolation: str
    state: str
    started_at: datetime
    last_heartbeat: datetime
    seconds_since_heartbeat: float
    stopped_at: datetime | None
    current_job: OwnJob | BusyElsewhere | None

    @property
    def heartbeat_ago(self) -> str:
        return seconds_ago(self.seconds_since_heartbeat)

    @property
    def own_job(self) -> OwnJob | None:
        return self.current_job if isinstance(self.current_job, OwnJob) else None

    @property
    def busy(self) -> bool:
        return self.current_job is not None


def offline_after_s() -> float:
    return settings.WORKER_HEARTBEAT_S * settings.WORKER_OFFLINE_AFTER_MISSED


def worker_state(worker: Worker, *, now: datetime) -> str:
    # A clean stop wins over a recent beat: the last beat may be younger than the offline window.
    if worker.stopped_at is not None:
        return STOPPED
    return ONLINE if (now - worker.last_heartbeat).total_seconds() <= offline_after_s() else OFFLINE


def _job_for(experiment: Experiment | None, *, viewer, lends: bool = False) -> OwnJob | BusyElsewhere | None:
    # The heartbeat may lag the job's end by one beat; a finished job is no current job.
    if experiment is None or experiment.status != Experiment.Status.RUNNING:
        return None
    if experiment.owner_id != viewer.pk:
        return BusyElsewhere()
    return OwnJob(id=experiment.pk, recipe=experiment.recipe, model=experiment.model.name,
                  progress=experiment.progress, stage=experiment.stage, lends=lends)


def worker_info(worker: Worker, *, viewer, now: datetime, lent_to: Experiment | None = None) -> WorkerInfo:
    """`lent_to`: the multi-host job this worker lends its devices to, if it does (Worker.hosting)."""
    state = worker_state(worker, now=now)
    # A worker that stopped or died runs nothing, whatever its last beat said.
    job = None
    if state == ONLINE:
        job = _job_for(worker.current_experiment, viewer=viewer) or _job_for(lent_to, viewer=viewer, lends=True)
    return WorkerInfo(
        name=worker.name, host=worker.host, pid=worker.pid, queues=worker.queues, devices=worker.devices,
        load=worker.load, isolation=worker.isolation, state=state, started_at=worker.started_at,
        last_heartbeat=worker.last_heartbeat,
        seconds_since_heartbeat=round(max(0.0, (now - worker.last_heartbeat).total_seconds()), 1),
        stopped_at=worker.stopped_at, current_job=job,
    )


def seconds_ago(seconds: float) -> str:
    """3 s ago, 4 min ago, 2 h ago, 5 d ago; the same steps as static/js/workers.js."""
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
