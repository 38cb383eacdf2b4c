"""Where an experiment's job goes and whether a live worker serves it: the outbox holds a job whose queue no live
worker serves (a CUDA-only job while no GPU worker is online, a gpu-x2 job while none has two GPUs) until one does.
The rule for the queue is optimizers.configs.devices'; `queue_expression` is the same rule in SQL."""
from datetime import timedelta

from django.conf import settings
from django.db.models import Case, CharField, F, Q, Value, When
from django.utils import timezone

from optimizers.configs.devices import ANY, CUDA_ONLY, GPU_ANY, gpus_of
from webapp.models import Worker
from webapp.selectors.worker_info import offline_after_s


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
    since = timezone.now() - timedelta(seconds=offline_after_s())
    return Worker.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=since)


def served_queues() -> set[str]:
    """The queues some live worker consumes. The shared queue always counts: a job sent there waits in the broker
    for the next worker to start, as it always has."""
    served = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for queues in live_workers().values_list("queues", flat=True):
        served.update(name for name in queues if isinstance(name, str))
    return served


def multi_host_workers() -> dict[str, int]:
    """How many live workers that take part in multi-host jobs (their heartbeat reports a host_address, from
    SLIMFORGE_WORKER_HOST_ADDRESS) serve each queue: a job on N hosts is sent only once N of them serve its queue."""
    counts: dict[str, int] = {}
    for queues, load in live_workers().filter(load__host_address__gt="").values_list("queues", "load"):
        address = (load or {}).get("host_address")
        if not (isinstance(address, str) and address):
            continue
        for name in {name for name in queues or [] if isinstance(name, str)}:
            counts[name] = counts.get(name, 0) + 1
    return counts


def hosts_available() -> Q:
    """Experiments whose hosts the live multi-host workers can give now: one host always (a queue nobody serves is
    served_queues' to hold back), several only where that many serve its queue (`queue`, annotated by the caller
    with queue_expression)."""
    condition = Q(hosts__lte=1)
    for queue, count in multi_host_workers().items():
        condition |= Q(queue=queue, hosts__lte=count)
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
