"""A job's memory estimate: about how much memory (its GPU's, or the machine's for a CPU job) it needs at its peak,
from the model's parameter count and the recipe. A worker compares it with what it has free before it claims the job
(tasks.placement), so a job too big for one device waits for a bigger one instead of dying out of memory halfway.

Rough by design and erring high: 4 bytes a parameter (fp32); training (prune, distill) holds the weights, their
gradients and AdamW's two moments, plus the frozen original or teacher; quantize holds the original, its quantized
copy and calibration activations; parallelize one copy a replica. Activations are a quarter on top, and a fixed
allowance covers the framework itself (a CUDA context alone is about half a gigabyte).
"""
RUNTIME_MB = 512
ACTIVATIONS_SHARE = 0.25
MODEL_COPIES = {"quantize": 3, "prune": 6, "distill": 7}
DEFAULT_COPIES = 3


def job_memory_mb(recipe: str, config: dict, params: int) -> float:
    """The estimate in MiB for a job of `recipe` with these settings on a model of `params` parameters."""
    if recipe == "parallelize":
        replicas = [count for count in config.get("replicas") or [1] if isinstance(count, int)]
        copies = 1 + max(replicas or [1])
    else:
        copies = MODEL_COPIES.get(recipe, DEFAULT_COPIES)
    weights_mb = max(int(params or 0), 0) * 4 / 2**20
    return RUNTIME_MB + copies * weights_mb * (1 + ACTIVATIONS_SHARE)
