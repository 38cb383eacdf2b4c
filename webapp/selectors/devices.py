"""Where an experiment's job goes and whether a live worker serves it: the outbox holds a job whose queue no live
worker serves (a CUDA-only job while no GPU worker is online, a gpu-x2 job while none has two GPUs) until one does.
The rule for the queue is optimizers.configs.devices'; `queue_expression` is the same rule in SQL."""
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, Value, When

from optimizers.configs.devices import ANY, CUDA_ONLY, GPU_ANY, gpus_of
from tasks.celery import RUN_EXPERIMENT
from webapp.clock import db_ago
from webapp.models import Experiment, OutboxMessage, Worker
from webapp.selectors.worker_info import offline_after_s

AT_WORK = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)  # with no outbox message: at the workers


def needs_cuda() -> Q:
    """Experiments whose settings run on CUDA only (optimizers.configs.devices)."""
    condition = Q(pk__in=[])
    for recipe, (name, values) in CUDA_ONLY.items():
        condition |= Q(recipe=recipe, **{f"config__{name}__in": list(values)})
    return condition


def queue_expression() -> Case:
    """An experiment's queue, as optimizers.configs.devices.queue_of names it, computed by the database."""
    return Case(When(~Q(device_shape=ANY), then=F("device_shape")),
                When(needs_cuda(), then=Value(GPU_ANY)),
                default=Value(settings.CELERY_TASK_DEFAULT_QUEUE), output_field=CharField())


def live_workers():
    """Workers that beat within the offline window and have not stopped."""
    since = db_ago(offline_after_s())
    return Worker.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=since)


def served_queues() -> set[str]:
    """The queues some live worker consumes. The shared queue always counts: a job sent there waits in the broker
    for the next worker to start, as it always has."""
    served = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for queues in live_workers().values_list("queues", flat=True):
        served.update(name for name in queues if isinstance(name, str))
    return served


def multi_host_workers() -> dict[str, set[str]]:
    """The live workers that take part in multi-host jobs (their heartbeat reports a host_address, from
    SLIMFORGE_WORKER_HOST_ADDRESS), by the queues they serve: a job on N hosts needs N of them on its queue."""
    serving: dict[str, set[str]] = {}
    rows = live_workers().filter(load__host_address__gt="").values_list("name", "queues", "load")
    for name, queues, load in rows:
        address = (load or {}).get("host_address")
        if not (isinstance(address, str) and address):
            continue
        for queue in {queue for queue in queues or [] if isinstance(queue, str)}:
            serving.setdefault(queue, set()).add(name)
    return serving


@dataclass
class HostPool:
    """Gang scheduling of multi-host jobs: a job on N hosts goes to the workers only while N multi-host workers of its
    queue are not promised to multi-host jobs already there. Without this, two 2-host jobs could each take one of two
    workers as their first host and wait for ever for the second (their join tasks queue behind the other's job).

    A job already at the workers (queued in the broker, or running) holds as many workers as it has hosts, counted
    against every queue whose multi-host workers overlap the ones of its own queue: it may take any of them. That is
    cautious where queues overlap partly, and never promises a worker twice."""
    serving: dict[str, set[str]]  # queue -> the live multi-host workers serving it
    held: list[tuple[str, int]]  # (queue, hosts) of each multi-host job at the workers

    @classmethod
    def now(cls) -> "HostPool":
        at_workers = (Experiment.objects.filter(hosts__gt=1, status__in=AT_WORK)
                      .exclude(Exists(OutboxMessage.objects.filter(task=RUN_EXPERIMENT, object_id=OuterRef("pk"))))
                      .annotate(queue=queue_expression()).values_list("queue", "hosts"))
        return cls(multi_host_workers(), list(at_workers))

    def online(self, queue: str) -> int:
        return len(self.serving.get(queue, ()))

    def held_on(self, queue: str) -> int:
        workers = self.serving.get(queue, set())
        reach = {other for other, names in self.serving.items() if names & workers}
        return sum(hosts for other, hosts in self.held if other in reach)

    def free(self, queue: str) -> int:
        return self.online(queue) - self.held_on(queue)

    def take(self, queue: str, hosts: int) -> bool:
        """Promise `hosts` workers of `queue` to one more job, if it has them free."""
        if hosts > self.free(queue):
            return False
        self.held.append((queue, hosts))
        return True

    def available(self) -> Q:
        """Experiments whose hosts are free now: one host always (a queue nobody serves is served_queues' to hold
        back), several only where that many free multi-host workers serve its queue (`queue`, annotated by the
        caller with queue_expression). Senders confirm each with `take`, under the outbox's lock."""
        condition = Q(hosts__lte=1)
        for queue in self.serving:
            condition |= Q(queue=queue, hosts__lte=self.free(queue))
        return condition


def offered_shapes() -> list[str]:
    """The device shapes some live worker serves, fewest GPUs first: what the experiment form offers beside any."""
    shapes = {name for name in served_queues() if gpus_of(name) is not None}
    return sorted(shapes, key=gpus_of)



def largest_device_mb(queue: str) -> float | None:
    """The most memory one job could have on a live worker serving `queue`: a GPU worker's smallest GPU (a job
    gets no more than its least GPU), a CPU worker's machine memory; None when no such worker says."""
    sizes = []
    for devices, load in live_workers().filter(queues__contains=[queue]).values_list("devices", "load"):
        gpus = [device.get("memory_mb") for device in devices or [] if isinstance(device, dict)]
        size = min(gpus) if gpus and all(isinstance(mb, int | float) for mb in gpus) else (load or {}).get(
            "memory_total_mb")
        if isinstance(size, int | float):
            sizes.append(size)
    return max(sizes) if sizes else None
