"""2:4 semi-structured sparsity: in every group of 4 consecutive weights of a Linear row, 2 are zero.

NVIDIA GPUs from Ampere on multiply such matrices on sparse tensor cores, in principle up to 2x faster.
In practice it depends on the shapes and the GPU (a plain 8192x8192 fp16 2:4 matmul ran at 0.75x the
dense speed on an H200), so each candidate layer is timed, dense against 2:4, at batch 32 on this GPU
first: only layers that measured at least `min_speedup` faster are pruned, and the job is refused with
the timings when none is. On a machine without CUDA the method is refused outright.
"""
import statistics

import torch
from torch import fx, nn

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.recipes.prune.finetune import finetune, step_checkpoints
from optimizers.recipes.prune.layers import private_copy
from optimizers.recipes.prune.two_four import LayerTiming, two_four_mask
from optimizers.registry import RecipeResult
from optimizers.reporters import Reporter, ScheduleReporter
from optimizers.training.replicated import distributed_extras

# Weight rows and columns must be multiples of these for the fp16 2:4 kernels (CUTLASS's limits, the stricter).
ROW_MULTIPLE, COLUMN_MULTIPLE = 32, 64
MIN_CAPABILITY = (8, 0)  # sparse tensor cores: Ampere and newer
TIMED_BATCH = 32
NO_CUDA = ("2:4 semi-structured sparsity needs an NVIDIA GPU (CUDA, compute capability 8.0 or newer) and this "
           "worker has none; choose unstructured or structured pruning, or run this on a GPU worker")


def cuda_refusal() -> str | None:
    """Why this machine cannot run 2:4 kernels, or None when it can."""
    if not torch.cuda.is_available():
        return NO_CUDA
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        return (f"2:4 sparse tensor cores need compute capability 8.0 or newer; this GPU "
                f"({torch.cuda.get_device_name()}) has {capability[0]}.{capability[1]}")
    return None


def eligible_linears(model: nn.Module, ignore_classifier: bool) -> dict[str, nn.Linear]:
    """Linear layers whose weight shape the 2:4 kernels take (the classifier left out when asked)."""
    linears = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if ignore_classifier and linears:
        linears.pop(list(linears)[-1])
    return {name: module for name, module in linears.items()
            if module.out_features % ROW_MULTIPLE == 0 and module.in_features % COLUMN_MULTIPLE == 0}


def semi_structured_applies(model: nn.Module) -> tuple[bool, str]:
    if isinstance(model, torch.jit.ScriptModule | fx.GraphModule):
        return False, ("2:4 sparsity is applied to Linear modules: upload a state dict (safetensors) with its "
                       "architecture")
    if not eligible_linears(model, ignore_classifier=False):
        return False, (f"no Linear layer has a shape the 2:4 kernels take (outputs a multiple of {ROW_MULTIPLE}, "
                       f"inputs a multiple of {COLUMN_MULTIPLE})")
    refusal = cuda_refusal()
    return (False, refusal) if refusal else (True, "Linear layers fit the 2:4 kernels; each is used only if faster")


def choose_layers(timings: dict[str, LayerTiming], min_speedup: float) -> tuple[list[str], str | None]:
    """The layers worth making 2:4 sparse, and the refusal (with the numbers) when there are none."""
    chosen = [name for name, timing in timings.items() if timing.speedup >= min_speedup]
    if chosen:
        return chosen, None
    measured = "; ".join(f"{name}: dense {t.dense_ms:.4f} ms, 2:4 {t.sparse_ms:.4f} ms ({t.speedup:.2f}x)"
                         for name, t in timings.items()) or "no layer could be timed"
    return [], (f"2:4 sparsity was not at least {min_speedup:.2f}x faster than dense for any Linear layer on this "
                f"GPU at batch {TIMED_BATCH}, so pruning would cost accuracy for nothing: {measured}")


def prune_semi_structured(model: nn.Module, data: DataSplits, config: PruneConfig, report: Reporter, *,
                          example: torch.Tensor, checkpoint_dir: str | None = None) -> RecipeResult:
    applicable, reason = semi_structured_applies(model)
    if not applicable:
        raise RecipeError(f"2:4 semi-structured pruning does not apply: {reason}")
    pruned = private_copy(model).cpu().eval()
    candidates = eligible_linears(pruned, config.ignore_classifier)
    report.stage("time 2:4 against dense")
    from optimizers.recipes.prune.two_four_timing import time_layers  # CUDA-only code, loaded only on GPU workers

    timings, skipped = time_layers(pruned, candidates, example, TIMED_BATCH)
    for name, why in skipped.items():
        report.log(f"{name} was not timed: {why}")
    chosen, refusal = choose_layers(timings, config.min_speedup)
    if refusal:
        raise RecipeError(refusal)
    weights = {f"{name}.weight": candidates[name].weight for name in chosen}
    masks = {name: two_four_mask(weight) for name, weight in weights.items()}
    speedup = statistics.median(timings[name].speedup for name in chosen)
    schedule = ScheduleReporter(report, [1.0])
    trained = finetune(pruned, data, example, config, schedule, epochs=config.epochs, stage="fine-tune", masks=masks,
                       weights=weights, checkpoint_dir=step_checkpoints(checkpoint_dir, 1))
    return RecipeResult(
        model=pruned.eval(),
        backend=f"2:4 magnitude pruning of {len(chosen)} Linear layer(s), timed on {torch.cuda.get_device_name()}",
        notes=[f"made 2:4 sparse: {', '.join(chosen)} (median speedup {speedup:.2f}x at batch {TIMED_BATCH}, fp16)",
               "the downloads keep the 2:4 zeros in dense tensors; to run on sparse tensor cores, convert each of "
               "these weights on the GPU with torch.sparse.to_sparse_semi_structured(weight.half().cuda())"],
        extras={"layer_timings": {name: {"dense_ms": t.dense_ms, "sparse_ms": t.sparse_ms,
                                          "speedup": round(t.speedup, 3), "used": name in chosen}
                                  for name, t in timings.items()},
                "untimed_layers": skipped, "timed_batch": TIMED_BATCH, **distributed_extras([trained])},
    )
