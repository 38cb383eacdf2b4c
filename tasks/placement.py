"""Whether a job fits this worker: before it claims an experiment, the worker compares the job's memory estimate
(optimizers.configs.memory) with the memory it has free now (its GPUs' free memory, the least of them, or the
machine's available memory for a CPU worker; capped by SLIMFORGE_WORKER_MEMORY_MB, what the operator lets this
worker's jobs have). A job that does not fit is left for a bigger device: its owner sees why on the page, and it goes
back to the outbox, from where the next sweep sends it to its queue again, where a worker with room can take it."""
import os

import psutil
from django.conf import settings

from optimizers.configs.memory import job_memory_mb
from tasks import multihost
from tasks.gpu_telemetry import gpu_free_memory_mb

MIB = 1024 * 1024


def free_memory() -> tuple[float, str]:
    """(MiB, of what) this worker could give a job now."""
    gpus = gpu_free_memory_mb(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpus:
        where = "GPU memory" if len(gpus) == 1 else f"GPU memory on the least free of its {len(gpus)} GPUs"
        free = min(gpus)
    else:
        free, where = psutil.virtual_memory().available / MIB, "memory"
    if settings.WORKER_MEMORY_MB is not None and settings.WORKER_MEMORY_MB < free:
        free, where = settings.WORKER_MEMORY_MB, f"{where} (SLIMFORGE_WORKER_MEMORY_MB)"
    return free, where


def does_not_fit(experiment, worker: str) -> str:
    """Why `worker` leaves this experiment for a bigger device, in words for its owner; "" when it fits."""
    if experiment.hosts > 1 and not multihost.takes_part():
        return (f"Worker {worker} left it for another: it takes no part in jobs on several hosts "
                "(SLIMFORGE_WORKER_HOST_ADDRESS is not set there). It waits for a worker that does.")
    params = experiment.model.params or (experiment.model.info or {}).get("params") or 0
    needed = job_memory_mb(experiment.recipe, experiment.config, params)
    free, where = free_memory()
    if needed <= free:
        return ""
    return (f"Worker {worker} left it for a bigger device: the job needs about {needed:,.0f} MB ({params:,} "
            f"parameters, {experiment.recipe}) and it has {free:,.0f} MB of {where} free. It waits for a worker "
            "with more room (or cancel it, or run it again on another device).")
