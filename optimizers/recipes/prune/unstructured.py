"""Unstructured pruning: global magnitude to a target sparsity, gradually (AGP), fine-tuned between steps.

Global, not per layer: one threshold across every Conv and Linear weight lets redundant layers give up
more than sensitive ones. The zeros are written into the weights themselves (see `layers`), so the
result is an ordinary dense model of the same architecture; it compresses well (`optimizers.formats.sparse_state_dict`)
but runs no faster on dense kernels.
"""
import torch
from torch import nn

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.recipes.prune.finetune import (
    agp_schedule,
    begin_step,
    finetune,
    step_checkpoints,
)
from optimizers.recipes.prune.layers import (
    agp_sparsity,
    apply_masks,
    global_magnitude_masks,
    private_copy,
    prunable,
    sparsity,
)
from optimizers.registry import RecipeResult
from optimizers.reporters import Reporter
from optimizers.training.replicated import distributed_extras


def prune_unstructured(model: nn.Module, data: DataSplits, config: PruneConfig, report: Reporter, *,
                       example: torch.Tensor, checkpoint_dir: str | None = None) -> RecipeResult:
    pruned = private_copy(model)
    weights = prunable(pruned, config.ignore_classifier)
    if not weights:
        raise RecipeError("nothing to prune: the model has no Linear or convolution weights"
                          + (" besides its classifier" if config.ignore_classifier else ""))
    steps = config.agp_steps
    schedule, epochs = agp_schedule(config, report)
    masks = None
    trained: list[dict | None] = []
    for step in range(1, steps + 1):
        begin_step(schedule, report, step, steps)
        masks = global_magnitude_masks(weights, agp_sparsity(step, steps, config.target_sparsity), masks)
        apply_masks(weights, masks)
        reached = sparsity(weights)
        report.metric("prune/sparsity", schedule.steps, reached)
        report.log(f"step {step}/{steps}: {reached:.1%} of the weights in {len(weights)} layers are zero")
        trained.append(finetune(pruned, data, example, config, schedule, epochs=epochs[step - 1], stage="fine-tune",
                                masks=masks, weights=weights, checkpoint_dir=step_checkpoints(checkpoint_dir, step)))
        schedule.next_slice()
    result = _result(pruned, weights, config)
    result.extras.update(distributed_extras(trained))
    return result


def _result(pruned: nn.Module, weights: dict[str, torch.Tensor], config: PruneConfig) -> RecipeResult:
    reached = sparsity(weights)
    total = sum(weight.numel() for weight in weights.values())
    skipped = " (the classifier was left dense)" if config.ignore_classifier else ""
    return RecipeResult(
        model=pruned,
        backend=f"global magnitude pruning, AGP schedule in {config.agp_steps} step(s), fine-tuned "
                f"({config.optimizer}, {config.lr_schedule} schedule)",
        notes=[f"{reached:.1%} of the {total:,} Conv and Linear weights are zero{skipped}",
               "the zeros are stored in ordinary dense tensors: the dense formats keep their size and latency; "
               "the compressed sparse state dict holds only the non-zero values"],
        extras={"sparsity": round(reached, 6), "pruned_weights": total - _nonzero(weights),
                "layer_sparsity": {name: round(sparsity({name: weight}), 4) for name, weight in weights.items()}},
    )


def _nonzero(weights: dict[str, torch.Tensor]) -> int:
    return sum(int(torch.count_nonzero(weight)) for weight in weights.values())
