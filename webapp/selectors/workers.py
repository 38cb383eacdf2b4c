"""Reads of the workers' heartbeats: shared by every user, with only the viewer's own job named."""
from django.utils import timezone

from webapp.models import Worker
from webapp.selectors.worker_info import WorkerInfo, worker_info


def worker_list(*, viewer) -> list[WorkerInfo]:
    """Every worker, for every logged-in user: workers are shared. Only the viewer's own job is named."""
    workers = Worker.objects.select_related("current_experiment__model")
    now = timezone.now()
    return [worker_info(worker, viewer=viewer, now=now) for worker in workers]
