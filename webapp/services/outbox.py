"""The outbox: every task is written to the database in the transaction that made its row, and sent to the broker
from there. The broker being down at submit time delays a job, it never loses one or leaves it `queued` for ever.

`outbox_send` is the one place tasks are sent. It runs when a transaction that wrote messages commits, when an
experiment finishes (its owner may send the next) and after every worker heartbeat (the sweep that sends what a
broker outage held back). It is also the fair-use scheduler: each user has at most `USER_MAX_RUNNING`
experiments handed to the workers at once (running, or waiting in the broker); the rest wait here, oldest first,
and are sent as the user's earlier jobs finish. Each experiment goes to the queue of the device shape it asks for
(webapp.selectors.devices); one whose queue no live worker serves (a gpu-x2 job, or a CUDA-only one like fp8_cuda,
while no such worker is online) waits, without taking a slot, until one does; so does a job on several hosts
(Experiment.hosts) until that many live workers of its queue that take multi-host jobs are not promised to other
multi-host jobs (gang scheduling: webapp.selectors.devices.HostPool). The broker's queue therefore holds
a few jobs of each user, not one user's week of work in front of everyone else's.

A message is deleted once the broker took it. A send that worked but whose deletion was lost is sent again; the
experiment's claim (services.experiment_claim) makes a second delivery do nothing.
"""
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery

from tasks.celery import RUN_EXPERIMENT
from tasks.celery import app as celery_app
from webapp.clock import db_ago
from webapp.models import Experiment, OutboxMessage
from webapp.selectors.devices import HostPool, queue_expression, served_queues

log = logging.getLogger(__name__)
_LOCK_NAMESPACE = 0x5F0B  # pg_advisory_xact_lock(namespace, owner id): one sender per user at a time
_HOSTS_LOCK = (0x5F0C, 0)  # one sender of multi-host jobs at a time, whoever's: the workers they take are shared
ACTIVE = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)
SWEEP_AFTER_S = 5  # how old an inspection's or a dataset's message must be before a sweep sends it


class BrokerUnreachable(Exception):
    pass


def outbox_add(task_name: str, object_id: int, owner_id: int, *, send: bool = True) -> None:
    """Part of the caller's transaction; sent after it commits, or by the next sweep. `send=False` when the caller
    knows it cannot go now (the owner's slots are full): the submit then costs no second transaction."""
    OutboxMessage.objects.create(task=task_name, object_id=object_id, owner_id=owner_id)
    if send:
        transaction.on_commit(lambda: send_after_commit(owner_id))


def send_after_commit(owner_id: int) -> None:
    """What committed is safe in the outbox: a failure to send it now is logged, never the caller's error."""
    try:
        outbox_send(owner_ids=[owner_id])
    except Exception:  # noqa: BLE001 - the database went away, say: the sweep sends it later
        log.warning("could not send the outbox of user %s now; a heartbeat sweep will", owner_id, exc_info=True)


def lock_outbox_of(owner_id: int) -> None:
    """Wait for, then hold until the caller's transaction ends, the lock every sender of this user's messages holds
    from its read of the outbox to the commit that deletes what it sent. Whoever decides by whether a message waits
    here takes it first: else a message already sent, and already taken by a worker, still reads as waiting."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, owner_id])


def outbox_send(*, owner_ids=None) -> int:
    """Send what may be sent now, for these users (default: all with messages, and the sweep's clean-up of messages
    whose experiment ended while it waited); return how many were sent.

    Never raises for a broker that is down: the messages stay, with the error, for the next sweep."""
    sweep = owner_ids is None
    if sweep:
        owner_ids = list(OutboxMessage.objects.values_list("owner_id", flat=True).distinct())
    sent, served, hosts = 0, served_queues(), HostPool.now().available()
    for owner_id in owner_ids:
        try:
            sent += _send_for(owner_id, sweep=sweep, served=served, hosts=hosts)
        except BrokerUnreachable:
            break  # the others would fail the same way; the next sweep tries again
    return sent


def _send_for(owner_id: int, *, sweep: bool, served: set[str], hosts: Q) -> int:
    """A handful of queries whatever the length of the user's queue: submit after submit stays as fast."""
    sent, unreachable = 0, None
    runs = OutboxMessage.objects.filter(owner_id=owner_id, task=RUN_EXPERIMENT)
    active = Exists(Experiment.objects.filter(pk=OuterRef("object_id"), status__in=ACTIVE))
    with transaction.atomic():
        lock_outbox_of(owner_id)
        if sweep:  # cancelled or deleted while they waited: nothing to run
            runs.exclude(active).delete()
        waiting = OutboxMessage.objects.filter(task=RUN_EXPERIMENT, object_id=OuterRef("pk"))
        at_workers = (Experiment.objects.filter(owner_id=owner_id, status__in=ACTIVE).exclude(Exists(waiting))
                      .count())
        room = settings.USER_MAX_RUNNING - at_workers
        messages = OutboxMessage.objects.filter(owner_id=owner_id).exclude(task=RUN_EXPERIMENT)
        if sweep:
            # An inspection or a dataset goes to the shared queue as the sending process names it (Celery's
            # default): a fresh one is its submitter's to send, right after its commit. The sweep takes what that
            # send left behind (a broker that was down), and never races it onto another process's idea of the
            # shared queue.
            messages = messages.filter(created_at__lte=db_ago(SWEEP_AFTER_S))
        messages = list(messages)
        if room > 0:
            # A job no live worker would take waits here, without taking a slot, rather than in the broker; so does
            # one on more hosts than the live multi-host workers of its queue.
            experiment = Experiment.objects.filter(pk=OuterRef("object_id"))
            queue = experiment.annotate(queue=queue_expression())
            ready = runs.filter(active).annotate(queue=Subquery(queue.values("queue")[:1]),
                                                 hosts=Subquery(experiment.values("hosts")[:1]))
            messages += _with_their_hosts(list(ready.filter(hosts, queue__in=served).order_by("pk")[:room]))
        for message in sorted(messages, key=lambda m: m.pk):
            try:
                # Inspections and datasets go to the shared queue (Celery's default); experiments to their own.
                routing = {"queue": message.queue} if getattr(message, "queue", None) else {}
                celery_app.send_task(message.task, args=[message.object_id], **routing)
            except Exception as exc:  # noqa: BLE001 - kombu's errors for a broker that is down or refuses
                _failed(message, exc)
                unreachable = exc
                break  # the transaction still commits the deletions of what was sent before
            message.delete()
            sent += 1
    if unreachable is not None:
        raise BrokerUnreachable from unreachable
    return sent


def _with_their_hosts(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """The messages whose hosts are still free, each multi-host one promised its workers (HostPool). Counted again
    under a lock, after the sends of other users' multi-host jobs have committed: they may have taken the workers
    since `available` was read. One that lost them waits for a later sweep."""
    if all(message.hosts <= 1 for message in messages):
        return messages
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(_HOSTS_LOCK))
    pool = HostPool.now()
    return [message for message in messages if message.hosts <= 1 or pool.take(message.queue, message.hosts)]


def _failed(message: OutboxMessage, exc: Exception) -> None:
    """Kept, with the reason its owner is shown."""
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=message.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:500])
    if message.attempts == 0:
        log.warning("the broker took no %s for #%s; it waits in the outbox", message.task, message.object_id)
