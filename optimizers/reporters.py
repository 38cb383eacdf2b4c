"""How recipes and jobs tell the outside world what they are doing.

Domain code gets a `Reporter` and calls it; it never knows whether events go to a pipe, a
database or nowhere. The events are `optimizers.events` records, without `seq` and `t`, which
the worker's bridge stamps on.
"""

import json
import threading
from typing import Protocol, TextIO

from optimizers.errors import Cancelled
from optimizers.events import Event, log_event, metric_event, progress_event, stage_event


class Reporter(Protocol):
    def progress(self, done: int, total: int, stage: str) -> None: ...
    def metric(self, name: str, step: int, value: float) -> None: ...
    def stage(self, name: str) -> None: ...
    def log(self, message: str) -> None: ...
    def cancelled(self) -> bool: ...


class NullReporter:
    """Drops everything; for tests and callers that do not care. Can still be cancelled."""

    def __init__(self) -> None:
        self.cancel_requested = False

    def progress(self, done: int, total: int, stage: str) -> None:
        pass

    def metric(self, name: str, step: int, value: float) -> None:
        pass

    def stage(self, name: str) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return self.cancel_requested


class ListReporter(NullReporter):
    """Keeps every event in `events`; lets tests check what a recipe reported."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def progress(self, done: int, total: int, stage: str) -> None:
        self.events.append(progress_event(done, total, stage))

    def metric(self, name: str, step: int, value: float) -> None:
        self.events.append(metric_event(name, step, value))

    def stage(self, name: str) -> None:
        self.events.append(stage_event(name))

    def log(self, message: str) -> None:
        self.events.append(log_event(message))


class JsonLinesReporter:
    """Writes one JSON object per line and flushes, so a reader sees each event at once.

    `cancel_event` is set from outside (the sandbox sets it on SIGUSR1) to ask for a stop.
    """

    def __init__(self, stream: TextIO, cancel_event: threading.Event | None = None) -> None:
        self.stream = stream
        self.cancel_event = cancel_event or threading.Event()

    def write(self, event: Event) -> None:
        self.stream.write(json.dumps(event, allow_nan=False) + "\n")
        self.stream.flush()

    def progress(self, done: int, total: int, stage: str) -> None:
        self.write(progress_event(done, total, stage))

    def metric(self, name: str, step: int, value: float) -> None:
        self.write(metric_event(name, step, value))

    def stage(self, name: str) -> None:
        self.write(stage_event(name))

    def log(self, message: str) -> None:
        self.write(log_event(message))

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class SubtaskReporter:
    """Maps a sub-task's own progress (say, layer 3 of 12) onto a slice of the job's bar.

    The job's bar runs 0..total; the sub-task owns [start, end) of it. Everything else passes
    through, so a recipe can report as if it were the whole job.
    """

    def __init__(self, parent: Reporter, start: int, end: int, total: int, step: str = "") -> None:
        self.parent, self.start, self.end, self.total, self.step = parent, start, end, total, step

    def progress(self, done: int, total: int, stage: str) -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        self.parent.progress(self.start + int((self.end - self.start) * fraction), self.total, stage)

    def metric(self, name: str, step: int, value: float) -> None:
        self.parent.metric(name, step, value)

    def stage(self, name: str) -> None:
        if name != self.step:  # the job already announced its own step
            self.parent.stage(name)

    def log(self, message: str) -> None:
        self.parent.log(message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()


class JobSteps:
    """A job's fixed list of steps on a 0..100 progress bar, one equal slice per step.

    `begin(name)` announces the step, checks for cancellation (steps are the safe points to
    stop) and returns a reporter whose progress fills that step's slice.
    """

    TOTAL = 100

    def __init__(self, report: Reporter, names: list[str]) -> None:
        self.report, self.names = report, names

    def begin(self, name: str) -> Reporter:
        if self.report.cancelled():
            raise Cancelled()
        index = self.names.index(name)
        start = self.TOTAL * index // len(self.names)
        end = self.TOTAL * (index + 1) // len(self.names)
        self.report.stage(name)
        self.report.progress(start, self.TOTAL, name)
        return SubtaskReporter(self.report, start, end, self.TOTAL, step=name)

    def finish(self) -> None:
        self.report.progress(self.TOTAL, self.TOTAL, "done")


class ScheduleReporter:
    """Passes events to `parent`, mapping progress into the current slice of the bar (slices sized by `weights`).

    `steps` counts optimizer steps across all fits so far: the x axis shared by every chart of the job.
    """

    def __init__(self, parent: Reporter, weights: list[float]) -> None:
        self.parent, self.weights = parent, weights
        self.slice, self.steps = 0, 0

    def next_slice(self) -> None:
        self.slice += 1

    def progress(self, done: int, total: int, stage: str) -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        whole = sum(self.weights)
        before = sum(self.weights[:self.slice])
        current = self.weights[self.slice] if self.slice < len(self.weights) else 0.0
        self.parent.progress(round(1000 * (before + current * fraction) / whole), 1000, stage)

    def metric(self, name: str, step: int, value: float) -> None:
        self.parent.metric(name, step, value)

    def stage(self, name: str) -> None:
        self.parent.stage(name)

    def log(self, message: str) -> None:
        self.parent.log(message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()
