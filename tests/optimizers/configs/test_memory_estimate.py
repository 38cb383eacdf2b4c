"""The memory estimate a worker checks before it claims a job (tasks.placement)."""
from optimizers.configs.memory import RUNTIME_MB, job_memory_mb

RESNET18 = 11_689_512  # parameters


def test_training_needs_more_than_quantizing_and_replicas_add_copies():
    quantize, prune, distill = (job_memory_mb(recipe, {}, RESNET18) for recipe in ("quantize", "prune", "distill"))
    assert RUNTIME_MB < quantize < prune < distill
    weights_mb = RESNET18 * 4 / 2**20
    assert 2 * weights_mb < quantize - RUNTIME_MB < 5 * weights_mb  # the original, its copy and activations
    one, four = (job_memory_mb("parallelize", {"replicas": replicas}, RESNET18) for replicas in ([1], [1, 2, 4]))
    assert four - one == 3 * weights_mb * 1.25


def test_an_unknown_size_or_odd_settings_still_give_an_estimate():
    assert job_memory_mb("quantize", {}, 0) == RUNTIME_MB
    assert job_memory_mb("parallelize", {"replicas": "many"}, 1000) > RUNTIME_MB
    assert job_memory_mb("some_future_recipe", {}, RESNET18) == job_memory_mb("quantize", {}, RESNET18)
