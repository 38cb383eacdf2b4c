"""Structured pruning: remove whole channels and neurons with Torch-Pruning until a MACs or parameter target holds.

Torch-Pruning's DepGraph finds every layer coupled to a channel (the batch norm after a convolution, the
next layer's inputs, both sides of a residual sum) and removes them together, so the result is a smaller
ordinary model that runs faster on dense kernels. Targets are approached on the AGP schedule: each step
prunes in small increments until that step's goal is met, then fine-tunes.
"""
import contextlib

import torch
import torch_pruning as tp
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from optimizers.configs.prune import ACTIVATION, PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.recipes.prune.finetune import (
    agp_schedule,
    begin_step,
    finetune,
    report_reached,
    step_checkpoints,
    structured_goal,
)
from optimizers.recipes.prune.layers import private_copy
from optimizers.recipes.prune.objective import LABELS_OBJECTIVE, Objective, accumulate_gradients
from optimizers.recipes.prune.transformers_structured import prune_transformers, transformers_structured_applies
from optimizers.registry import RecipeResult
from optimizers.reporters import Reporter
from optimizers.training.replicated import distributed_extras

INCREMENTS = 200  # each pruner step removes 1/INCREMENTS of every layer's channels: targets are met closely
MAX_CHANNEL_SHARE = 0.9  # no layer loses more than this share of its channels (a 1-channel layer is a bottleneck)
TAYLOR_SAMPLES = 256  # training samples whose gradients rank channels for the taylor criterion
# Kept whole: attention (its heads and widths are tied in ways channel removal would break) and embeddings.
_KEPT_TYPES = (nn.MultiheadAttention, nn.Embedding)


def structured_applies(model: nn.Module) -> tuple[bool, str]:
    if isinstance(model, TokenIdsModel):
        # Channel removal would cut query, key and value widths apart from the heads they form: heads and
        # feed-forward neurons are removed by the model's own parts instead.
        return transformers_structured_applies(model)
    if isinstance(model, torch.jit.ScriptModule | fx.GraphModule):
        return False, ("removing channels rewrites the layers' shapes, which needs the model's Python modules: "
                       "upload a state dict (safetensors) with its architecture")
    if not any(isinstance(module, nn.Linear | nn.modules.conv._ConvNd) for module in model.modules()):
        return False, "the model has no Linear or convolution layers"
    return True, "channels and neurons can be removed (Torch-Pruning)"


def prune_structured(model: nn.Module, data: DataSplits, config: PruneConfig, report: Reporter, *,
                     example: torch.Tensor, checkpoint_dir: str | None = None,
                     objective: Objective = LABELS_OBJECTIVE) -> RecipeResult:
    """`objective`: what fine-tuning learns from (labels, or the original's outputs) and how it is judged."""
    if isinstance(model, TokenIdsModel):
        return prune_transformers(model, data, config, report, example=example, checkpoint_dir=checkpoint_dir,
                                  objective=objective)
    applicable, reason = structured_applies(model)
    if not applicable:
        raise RecipeError(f"structured pruning does not apply: {reason}")
    if config.trim_vocabulary:
        raise RecipeError("trim_vocabulary is built for Hugging Face encoders with a WordPiece tokenizer; this model "
                          "is no Hugging Face folder")
    if config.importance == ACTIVATION:
        raise RecipeError("the activation importance is built for transformers models (Hugging Face folders); "
                          "choose magnitude or taylor")
    pruned = private_copy(model).cpu().eval()
    before = _macs_and_params(pruned, example)
    channels_before = _out_channels(pruned)
    pruner = tp.pruner.BasePruner(
        pruned, example, importance=_importance(config), pruning_ratio=1.0, max_pruning_ratio=MAX_CHANNEL_SHARE,
        iterative_steps=INCREMENTS, ignored_layers=_kept_layers(pruned), global_pruning=False)
    steps = config.agp_steps
    schedule, epochs = agp_schedule(config, report)
    trained: list[dict | None] = []
    for step in range(1, steps + 1):
        begin_step(schedule, report, step, steps)
        reached = _prune_until(pruner, pruned, example, before, structured_goal(config, step), data, config,
                               objective)
        report_reached(report, schedule, step, steps, reached)
        trained.append(finetune(pruned, data, example, config, schedule, epochs=epochs[step - 1], stage="fine-tune",
                                checkpoint_dir=step_checkpoints(checkpoint_dir, step), objective=objective))
        schedule.next_slice()
    pruned.eval()
    result = _result(pruned, example, config, before, channels_before)
    result.extras.update(distributed_extras(trained))
    return result


def _prune_until(pruner, model: nn.Module, example: torch.Tensor, before: tuple[int, int], goal: tuple[float, float],
                 data: DataSplits, config: PruneConfig, objective: Objective) -> tuple[float, float]:
    """Prune in small increments until MACs and parameters are at most `goal` x the original's."""
    model.eval()
    if config.importance == "taylor":
        accumulate_gradients(model, data, example, objective, samples=TAYLOR_SAMPLES, batch=64)
    ratios = _ratios(_macs_and_params(model, example), before)
    while (ratios[0] > goal[0] or ratios[1] > goal[1]) and pruner.current_step < pruner.iterative_steps:
        pruner.step()
        ratios = _ratios(_macs_and_params(model, example), before)
    model.zero_grad(set_to_none=True)
    return ratios


def _importance(config: PruneConfig):
    if config.importance == "taylor":
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=2)


def _kept_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose outputs must stay: the output layer (its outputs are the classes) and attention/embeddings."""
    layers = [module for module in model.modules() if isinstance(module, nn.Linear | nn.modules.conv._ConvNd)]
    linears = [module for module in layers if isinstance(module, nn.Linear)]
    output = linears[-1] if linears else layers[-1]
    return [output, *(module for module in model.modules() if isinstance(module, _KEPT_TYPES))]


def _macs_and_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    counter = FlopCounterMode(display=False)
    # The fused attention fast path is one opaque op to the counter: count the plain one.
    with torch.no_grad(), _attention_fast_path(False), counter:
        model(example)
    return counter.get_total_flops() // 2, sum(parameter.numel() for parameter in model.parameters())


@contextlib.contextmanager
def _attention_fast_path(enabled: bool):
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def _ratios(now: tuple[int, int], before: tuple[int, int]) -> tuple[float, float]:
    return tuple(current / original if original else 1.0 for current, original in zip(now, before, strict=True))


def _out_channels(model: nn.Module) -> dict[str, int]:
    return {name: module.weight.shape[0] for name, module in model.named_modules()
            if isinstance(module, nn.Linear | nn.modules.conv._ConvNd)}


def _result(pruned: nn.Module, example: torch.Tensor, config: PruneConfig, before: tuple[int, int],
            channels_before: dict[str, int]) -> RecipeResult:
    after = _macs_and_params(pruned, example)
    macs_ratio, params_ratio = _ratios(after, before)
    channels = {name: [count, pruned.get_submodule(name).weight.shape[0]] for name, count in channels_before.items()}
    notes = [f"{macs_ratio:.1%} of the MACs and {params_ratio:.1%} of the parameters are left; the layers really "
             "are narrower, so the dense formats shrink and run faster",
             "the pruned layers no longer fit the uploaded architecture's settings, so there is no safetensors "
             "download: model.pt (TorchScript) is the primary file"]
    if macs_ratio > config.target_macs_ratio + 0.01 or params_ratio > config.target_params_ratio + 0.01:
        notes.append(f"the target was not reached: no layer loses more than {MAX_CHANNEL_SHARE:.0%} of its channels")
    return RecipeResult(
        model=pruned,
        backend=f"Torch-Pruning {tp.__version__} DepGraph, {config.importance} importance, AGP schedule in "
                f"{config.agp_steps} step(s), fine-tuned ({config.optimizer}, {config.lr_schedule} schedule)",
        notes=notes, primary_format="torchscript",
        extras={"macs_before": before[0], "macs_after": after[0], "params_before": before[1],
                "params_after": after[1], "out_channels": channels},
    )
