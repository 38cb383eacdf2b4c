"""The event record: what a running job tells the pages, typed once for every part that passes it on.

A recipe's reporter and the worker's telemetry sampler make events with the constructors below; the bridge
stamps each with `t` (unix seconds) and the services with `seq` (per experiment, from 1, no gaps); the database
keeps them; the WebSocket consumer and the series read model serve them; the experiment page's JavaScript reads
the same names from `contract()`, which the page embeds as JSON. Standard library only: the web process, the
worker and the sandbox child all import it. docs/architecture.md ("The event record") shows examples.

Series names are `group/measure`, with units in the name where they are not obvious (`_w`, `_c`, `_mb`, `_j`).
"""
import math
from typing import Literal, NotRequired, TypedDict

PROGRESS: Literal["progress"] = "progress"
METRIC: Literal["metric"] = "metric"
RESOURCE: Literal["resource"] = "resource"
LOG: Literal["log"] = "log"
STAGE: Literal["stage"] = "stage"
STATUS: Literal["status"] = "status"
KINDS = (PROGRESS, METRIC, RESOURCE, LOG, STAGE, STATUS)

# An experiment's status, as its row stores it and its status events carry it.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

# The sandbox child's last line on its event stream: not an event, the job's outcome (see optimizers.job_child).
RESULT_LINE, ERROR_LINE = "result", "error"


class Stamp(TypedDict, total=False):
    seq: int  # set when the event is stored
    t: float  # set when the event leaves the job


class ProgressEvent(Stamp):
    kind: Literal["progress"]
    done: int
    total: int
    stage: str


class MetricEvent(Stamp):
    kind: Literal["metric"]
    name: str
    step: int
    value: float | None  # None: the value was NaN or infinite (a diverged loss), drawn as a gap


class ResourceEvent(Stamp):
    kind: Literal["resource"]
    name: str
    value: float


class LogEvent(Stamp):
    kind: Literal["log"]
    message: str


class StageEvent(Stamp):
    kind: Literal["stage"]
    name: str


class StatusEvent(Stamp):
    kind: Literal["status"]
    status: str
    error: NotRequired[str]
    note: NotRequired[str]  # what the user should know about this change (a run resumed after a lost worker)


Event = ProgressEvent | MetricEvent | ResourceEvent | LogEvent | StageEvent | StatusEvent


def progress_event(done: int, total: int, stage: str) -> ProgressEvent:
    return {"kind": PROGRESS, "done": int(done), "total": int(total), "stage": stage}


def metric_event(name: str, step: int, value: float) -> MetricEvent:
    value = float(value)
    # NaN and infinity are not JSON; a diverged loss is shown as a gap rather than breaking the stream.
    return {"kind": METRIC, "name": name, "step": int(step), "value": value if math.isfinite(value) else None}


def resource_event(name: str, value: float, digits: int = 2) -> ResourceEvent:
    return {"kind": RESOURCE, "name": name, "value": round(float(value), digits)}


def log_event(message: str) -> LogEvent:
    return {"kind": LOG, "message": str(message)}


def stage_event(name: str) -> StageEvent:
    return {"kind": STAGE, "name": name}


def status_event(status: str, error: str = "", note: str = "") -> StatusEvent:
    if status not in STATUSES:
        raise ValueError(f"unknown experiment status {status!r}; known: {', '.join(STATUSES)}")
    event: StatusEvent = {"kind": STATUS, "status": status}
    if error or status in FINISHED:  # a finished run always says why (an empty error: nothing went wrong)
        event["error"] = error
    if note:
        event["note"] = note
    return event


def stage_of(event: dict) -> str | None:
    """The stage an event announces: a stage event's name, or a progress event's stage."""
    stage = event.get("name") if event.get("kind") == STAGE else \
        event.get("stage") if event.get("kind") == PROGRESS else None
    return str(stage) if stage else None


def contract() -> dict:
    """The names the page's JavaScript needs, as JSON: one source, so the two sides cannot drift apart."""
    return {"kinds": {kind.upper(): kind for kind in KINDS},
            "statuses": {status.upper(): status for status in STATUSES}, "finished": list(FINISHED)}
