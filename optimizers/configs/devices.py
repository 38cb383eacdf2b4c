"""Which settings need a CUDA worker. The web holds such a job in its outbox until a worker with a GPU is online
(webapp.services.outbox), rather than sending it to a CPU worker that would fail it seconds later."""
from optimizers.configs.quantize_routes import ROUTES, Route

# recipe -> (setting, the values of it that run on CUDA only)
CUDA_ONLY: dict[str, tuple[str, tuple[str, ...]]] = {
    "quantize": ("variant", tuple(variant for variant, kinds in ROUTES.items()
                                  if all(isinstance(route, Route) and route.device == "cuda"
                                         for route in kinds.values() if isinstance(route, Route)))),
    "parallelize": ("device", ("cuda",)),
}


def cuda_reason(recipe: str, config: dict) -> str | None:
    """Why a job with these settings needs a GPU worker ("fp8_cuda runs on CUDA"), or None when any worker can."""
    rule = CUDA_ONLY.get(recipe)
    if rule is None:
        return None
    name, values = rule
    value = config.get(name)
    return f"{name} {value} runs on a CUDA GPU" if value in values else None


# Device shapes: what one worker process has, and the name of the queue of the jobs that ask for it. A worker with
# no GPU serves "cpu", one with one GPU "gpu", one with N GPUs (a DDP group) "gpu-xN". An experiment asks for a shape
# or for ANY: its job then goes to the shared queue every worker serves (settings.CELERY_TASK_DEFAULT_QUEUE), or, when
# its settings run on CUDA only, to GPU_ANY, which every worker with a GPU serves. The launcher (which imports none of
# this) names its workers' queues by the same rule; tests/launcher checks that the two agree.
ANY = "any"
CPU = "cpu"
GPU_ANY = "gpu-any"
MAX_GPUS_PER_WORKER = 64


def shape_of(gpus: int) -> str:
    """The shape of a worker process with this many GPUs."""
    if not 0 <= gpus <= MAX_GPUS_PER_WORKER:
        raise ValueError(f"a worker has 0 to {MAX_GPUS_PER_WORKER} GPUs, not {gpus}")
    return CPU if gpus == 0 else "gpu" if gpus == 1 else f"gpu-x{gpus}"


def gpus_of(shape: str) -> int | None:
    """How many GPUs a shape names (0 for cpu), or None when it names no shape."""
    if shape == CPU:
        return 0
    if shape == "gpu":
        return 1
    count = shape.removeprefix("gpu-x")
    if count != shape and count.isdigit() and not count.startswith("0") and 2 <= int(count) <= MAX_GPUS_PER_WORKER:
        return int(count)
    return None


def shape_error(shape: str, recipe: str, config: dict) -> str | None:
    """Why an experiment cannot ask for this shape (an unknown name, a CUDA-only job on the CPU), or None."""
    if shape != ANY and gpus_of(shape) is None:
        return (f"Unknown device {shape[:40]!r}: ask for any, cpu, gpu (one GPU) or gpu-xN (a worker with N GPUs, "
                f"2 to {MAX_GPUS_PER_WORKER}).")
    gpu_reason = cuda_reason(recipe, config)
    if gpu_reason and shape == CPU:
        return f"The {gpu_reason}: ask for a GPU or for any device."
    return None


def queue_of(shape: str, recipe: str, config: dict, default_queue: str) -> str:
    """The queue an experiment's job goes to."""
    if shape != ANY:
        return shape
    return GPU_ANY if cuda_reason(recipe, config) else default_queue
