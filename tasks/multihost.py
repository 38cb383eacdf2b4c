"""The worker's side of multi-host experiments (Experiment.hosts > 1; the training side is optimizers.training.hosts).

The worker that claims the experiment is its first host: it picks a free port on its own address
(SLIMFORGE_WORKER_HOST_ADDRESS) for the job's store, asks for the other hosts by sending one join task per further
host to the experiment's queue, and runs the job as usual, its sandbox sharing the host's network. A worker that takes
a join task runs a "ranks" job in its sandbox: it lends its devices to the first host's rounds until the job ends.
Only workers whose operator set SLIMFORGE_WORKER_HOST_ADDRESS take part; the others pass both kinds of task on.
"""
import secrets
import socket
from collections.abc import Callable

import psutil
from django.conf import settings

from optimizers.configs.devices import queue_of
from optimizers.events import LOG, RESOURCE, Event
from tasks.celery import JOIN_EXPERIMENT, app


class HostSetupError(Exception):
    """This worker cannot serve as a host of multi-host jobs as configured; the message says what to fix."""


def takes_part() -> bool:
    return bool(settings.WORKER_HOST_ADDRESS)


def interface_of(address: str) -> str:
    """The network interface holding `address` (its ranks' connections go through it)."""
    for name, entries in psutil.net_if_addrs().items():
        if any(entry.address.split("%")[0] == address for entry in entries):
            return name
    raise HostSetupError(f"SLIMFORGE_WORKER_HOST_ADDRESS {address} is not the address of any network interface of "
                         f"worker host {socket.gethostname()}; set it to one of its own addresses")


def free_port(address: str) -> int:
    """A port nobody listens on now, for the job's store (taken again by the job's child a moment later)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def first_host(experiment, attempt: int) -> dict:
    """The first host's JobSpec `hosts`, once the other hosts have been asked to join this attempt."""
    address = settings.WORKER_HOST_ADDRESS
    # The job's secret seals what its store carries (optimizers.training.sealed): it travels only in the join tasks,
    # through the broker, never through the store, which any sandbox on the cluster network may reach.
    hosts = {"count": experiment.hosts, "node": 0, "address": address, "port": free_port(address),
             "interface": interface_of(address), "wait_s": settings.HOSTS_WAIT_S, "secret": secrets.token_hex(32)}
    queue = queue_of(experiment.device_shape, experiment.recipe, experiment.config, settings.CELERY_TASK_DEFAULT_QUEUE)
    for node in range(1, experiment.hosts):
        app.send_task(JOIN_EXPERIMENT, args=[experiment.pk, attempt, node, experiment.hosts, address, hosts["port"],
                                             hosts["secret"]], queue=queue)
    return hosts


def on_host(number: int, emit: Callable[[Event], None]) -> Callable[[Event], None]:
    """`emit` for a further host's sampler: its readings as host<number>/<name> series of the experiment (so its GPUs
    chart apart from the first host's), its notes prefixed; nothing else of it (the job's events are the first
    host's)."""
    def renamed(event: Event) -> None:
        if event["kind"] == RESOURCE:
            emit({**event, "name": f"host{number}/{event['name']}"})
        elif event["kind"] == LOG:
            emit({**event, "message": f"host {number}: {event['message']}"})

    return renamed


def further_host(node: int, count: int, address: str, port: int, secret: str) -> dict:
    """A further host's JobSpec `hosts`: the first host's store and secret, this host's own interface."""
    return {"count": count, "node": node, "address": address, "port": port,
            "interface": interface_of(settings.WORKER_HOST_ADDRESS), "wait_s": settings.HOSTS_WAIT_S,
            "secret": secret}
