"""The worker's heartbeat: every few seconds the worker's main process writes who it is, what it serves, its GPUs,
how loaded its machine is and which job it runs (webapp.models.Worker), so the Workers page can tell live workers
from dead ones.

Only worker processes import this module (tasks.celery lists it in `include`); the web process never does.
"""
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psutil
from celery import signals
from celery.worker import state as worker_state
from django.conf import settings
from django.db import connection

from tasks import isolation
from tasks.celery import JOIN_EXPERIMENT, RUN_EXPERIMENT
from tasks.gpu_telemetry import gpu_devices
from tasks.process_tree import MIB, tree_usage
from webapp import services

log = logging.getLogger(__name__)
STOP_WAIT_S = 10


def machine_load(process: psutil.Process) -> dict:
    # rss_mb: the worker with its pool processes and their sandboxes, where the jobs really use memory.
    # host_address: where the ranks of a multi-host job reach this worker ("": it takes no multi-host jobs), which the
    # outbox counts before it sends one (webapp.selectors.devices.HostPool).
    memory = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(interval=None), "memory_percent": memory.percent,
            "memory_total_mb": round(memory.total / MIB),
            "loadavg_1m": round(os.getloadavg()[0], 2), "rss_mb": round(tree_usage(process)[1] / MIB, 1),
            "cpu_count": psutil.cpu_count(), "host_address": settings.WORKER_HOST_ADDRESS}


def consumer_queues(consumer) -> list[str]:
    """The queues the worker consumes now (`-Q`, or those added later by `celery control add_consumer`)."""
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = task_consumer.queues if task_consumer is not None else consumer.app.amqp.queues.consume_from.values()
    return sorted({queue.name for queue in queues})


def running_experiments() -> list[int]:
    """The experiments this worker's pool runs now, as its main process tracks the tasks it handed out (a pool
    process that died no longer counts once Celery has noticed)."""
    return _experiments_of(RUN_EXPERIMENT)


def hosted_experiments() -> list[int]:
    """The multi-host experiments this worker lends its devices to, as a further host (tasks.multihost)."""
    return _experiments_of(JOIN_EXPERIMENT)


def _experiments_of(task_name: str) -> list[int]:
    for _ in range(5):
        try:
            requests = list(worker_state.active_requests)  # the pool's callbacks change it from another thread
            break
        except RuntimeError:
            continue
    else:  # never report "nothing runs" by mistake: that would let the reaper take a live job; this beat fails
        raise RuntimeError("the worker's active requests kept changing while being read")
    return [request.args[0] for request in requests
            if request.name == task_name and request.args and isinstance(request.args[0], int)]


class Heartbeat:
    """A daemon thread in the worker's main process; a failed beat is logged and the next one tries again."""

    def __init__(self, *, name: str, read_queues: Callable[[], list[str]], interval: float) -> None:
        self.name, self.read_queues, self.interval = name, read_queues, interval
        self.process = psutil.Process()
        self.started_at = datetime.fromtimestamp(self.process.create_time(), tz=UTC)
        self.devices = gpu_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))  # fixed while it runs
        self.isolation = isolation.describe()  # probed once, at start-up
        log.info("worker %s: sandbox: %s", name, self.isolation)
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {name}", daemon=True)

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # the first reading only starts psutil's measuring period
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_WAIT_S)

    def _run(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self.interval):
                return

    def beat(self) -> bool:
        try:
            services.worker_heartbeat(name=self.name, host=socket.gethostname(), pid=self.process.pid,
                                      started_at=self.started_at, queues=self.read_queues(), devices=self.devices,
                                      load=machine_load(self.process), isolation=self.isolation,
                                      running=running_experiments(), hosting=hosted_experiments())
            # Every live worker looks for jobs whose worker died (one of them gets each, under a row lock).
            recovered = services.experiments_recover()
            if recovered:
                log.warning("worker %s: jobs whose worker was lost, queued again or failed: %s", self.name, recovered)
            # The sweep: tasks a broker outage held back, and users' next jobs as their earlier ones finished.
            services.outbox_send()
        except Exception:  # noqa: BLE001 - whatever failed (the database is down, say), the worker must live on
            self._failed()
            return False
        finally:
            # No connection stays open between beats: the pool forks its children from this process, and a child
            # closing an inherited connection would close it under this thread too.
            connection.close()
        if self.failures:
            log.info("heartbeat of %s works again after %d failed beats", self.name, self.failures)
        self.failures = 0
        return True

    def _failed(self) -> None:
        self.failures += 1
        if self.failures == 1:
            log.exception("heartbeat of %s failed; trying again every %s s", self.name, self.interval)
        else:
            log.warning("heartbeat of %s failed %d times in a row", self.name, self.failures)


_running: Heartbeat | None = None


@signals.worker_ready.connect
def start_heartbeat(sender, **kwargs) -> None:
    """`sender` is the worker's consumer; its hostname is the Celery node name (queue@host)."""
    global _running
    if _running is not None:
        return
    _running = Heartbeat(name=sender.hostname, read_queues=lambda: consumer_queues(sender),
                         interval=settings.WORKER_HEARTBEAT_S)
    _running.start()


@signals.worker_shutdown.connect
def stop_heartbeat(sender, **kwargs) -> None:
    """A clean (warm or cold) shutdown: stop beating first, so no late beat undoes "stopped"."""
    global _running
    if _running is None:
        return
    heartbeat, _running = _running, None
    heartbeat.stop()
    try:
        services.worker_stopped(name=heartbeat.name)
    except Exception:  # noqa: BLE001 - the row then turns "offline" by itself; shutting down must go on
        log.exception("could not mark worker %s stopped", heartbeat.name)
    finally:
        connection.close()
