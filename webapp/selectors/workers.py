"""Reads of the workers' heartbeats: shared by every user, with only the viewer's own job named."""

from webapp.clock import db_now
from webapp.models import Experiment, Worker
from webapp.selectors.worker_info import WorkerInfo, worker_info


def worker_list(*, viewer) -> list[WorkerInfo]:
    """Every worker, for every logged-in user: workers are shared. Only the viewer's own job is named."""
    workers = list(Worker.objects.select_related("current_experiment__model"))
    # A further host of a multi-host job runs none of its own: it shows the job it lends its devices to.
    hosted = {worker.pk: worker.hosting[0] for worker in workers
              if worker.hosting and isinstance(worker.hosting[0], int)}
    lent_to = Experiment.objects.select_related("model").in_bulk(set(hosted.values()))
    now = db_now()  # the clock the heartbeats were written with
    return [worker_info(worker, viewer=viewer, now=now, lent_to=lent_to.get(hosted.get(worker.pk)))
            for worker in workers]
