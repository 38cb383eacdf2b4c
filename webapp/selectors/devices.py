"""Jobs that need a GPU, and whether a worker with one is online: the outbox holds the first until the second."""
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from optimizers.configs.devices import CUDA_ONLY
from webapp.models import Worker
from webapp.selectors.worker_info import offline_after_s


def needs_cuda() -> Q:
    """Experiments whose settings run on CUDA only (optimizers.configs.devices)."""
    condition = Q(pk__in=[])
    for recipe, (name, values) in CUDA_ONLY.items():
        condition |= Q(recipe=recipe, **{f"config__{name}__in": list(values)})
    return condition


def gpu_worker_online() -> bool:
    """A worker that beat within the offline window, has not stopped, and reported at least one GPU."""
    since = timezone.now() - timedelta(seconds=offline_after_s())
    return Worker.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=since).exclude(devices=[]).exists()
