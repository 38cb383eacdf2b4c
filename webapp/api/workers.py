"""GET /api/workers/: every worker as its heartbeat last told it; the current job is named only to its owner."""
from django.urls import reverse
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors
from webapp.api import schema
from webapp.selectors.worker_info import BusyElsewhere, OwnJob, WorkerInfo


def _job_json(job: OwnJob | BusyElsewhere | None, request) -> dict | None:
    if job is None:
        return None
    if isinstance(job, BusyElsewhere):
        return {"busy": True}
    url = request.build_absolute_uri(reverse("experiment-detail", args=[job.id]))
    return {"busy": True, "id": job.id, "recipe": job.recipe, "model": job.model, "progress": job.progress,
            "stage": job.stage, "url": url, "lends": job.lends}


def worker_json(worker: WorkerInfo, request) -> dict:
    return {
        "name": worker.name, "host": worker.host, "pid": worker.pid, "queues": worker.queues,
        "devices": worker.devices, "load": worker.load, "isolation": worker.isolation, "state": worker.state,
        "last_heartbeat": worker.last_heartbeat, "seconds_since_heartbeat": worker.seconds_since_heartbeat,
        "started_at": worker.started_at, "stopped_at": worker.stopped_at,
        "current_job": _job_json(worker.current_job, request),
    }


class WorkerList(APIView):
    @schema.workers
    def get(self, request):
        return Response([worker_json(worker, request) for worker in selectors.worker_list(viewer=request.user)])
