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
