"""Prune: make a model sparse or narrower, then fine-tune it on the dataset to win back accuracy.

Three methods (`PruneConfig.method`), each in its own module: unstructured (prune_unstructured),
structured (prune_structured), semi_structured_2_4 (prune_semi_structured). Whatever the method, the
result of unstructured and 2:4 pruning also comes as a compressed sparse state dict (`SPARSE_FILE`, see
`optimizers.formats.sparse_state_dict`), the download that actually shrinks with the zeros.
"""
from typing import Any

import torch
from torch import nn

from optimizers.configs.prune import ORIGINAL_OUTPUTS, SEMI_STRUCTURED, STRUCTURED, UNSTRUCTURED, PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.formats.sparse_state_dict import dense_size, encode_state_dict
from optimizers.recipes.prune.finetune import recipe_example, require_labels
from optimizers.recipes.prune.layers import weight_layers
from optimizers.recipes.prune.objective import objective_for
from optimizers.recipes.prune.semi_structured import prune_semi_structured, semi_structured_applies
from optimizers.recipes.prune.structured import prune_structured, structured_applies
from optimizers.recipes.prune.unstructured import prune_unstructured
from optimizers.registry import RecipeResult, register
from optimizers.reporters import Reporter

SPARSE_FILE = "model.sparse.zip"
NEEDS_DATASET = ("needs a dataset to fine-tune on: with labels, unless structured pruning fine-tunes on the "
                 "original's outputs")
NEEDS_SAMPLES = ("pruning fine-tunes the model to match the original's outputs on a dataset's samples; choose one "
                 "for this experiment")


def unstructured_applies(model: nn.Module) -> tuple[bool, str]:
    if isinstance(model, torch.jit.ScriptModule):
        return False, ("a TorchScript model is frozen code whose weights cannot be fine-tuned after pruning: "
                       "upload a state dict (safetensors) with its architecture, or a torch.export (.pt2) file")
    layers = weight_layers(model)
    if not layers:
        return False, "the model has no Linear or convolution weights"
    count = sum(layer.weight.numel() for layer in layers)
    return True, f"{count:,} weights in {len(layers)} Linear and convolution layers can be pruned"


_METHODS = {
    UNSTRUCTURED: (unstructured_applies, prune_unstructured),
    STRUCTURED: (structured_applies, prune_structured),
    SEMI_STRUCTURED: (semi_structured_applies, prune_semi_structured),
}


def method_applicability(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{method: {"applicable": bool, "reason": str}}: what the model page lists and the web checks at submit."""
    return {method: dict(zip(("applicable", "reason"), check(model), strict=True))
            for method, (check, _) in _METHODS.items()}


ONNX_NOT_PRUNABLE = "ONNX models cannot be pruned here: pruning fine-tunes a PyTorch model"


def prune_applies(model: nn.Module) -> tuple[bool, str]:
    if getattr(model, "onnx_path", None) is not None:  # an OnnxModel: an onnxruntime session, no modules
        return False, ONNX_NOT_PRUNABLE
    methods = method_applicability(model)
    reasons = "; ".join(f"{method}: {answer['reason']}" for method, answer in methods.items())
    return any(answer["applicable"] for answer in methods.values()), f"{reasons} ({NEEDS_DATASET})"


@register("prune", PruneConfig, applies_to=prune_applies, variants=method_applicability)
def prune(model: nn.Module, data: DataSplits | None, config: PruneConfig, report: Reporter, *,
          example: torch.Tensor | None = None, checkpoint_dir: str | None = None) -> RecipeResult:
    """Return a pruned, fine-tuned copy of `model`; the input model is never modified.

    `example` is the job's example input (batch 1): it gives the input shape the dataset is fitted to and
    traces the model for structured pruning. `checkpoint_dir` lets a retried job resume its fine-tuning.
    """
    report.stage("prune")
    check, run = _METHODS[config.method]
    applicable, reason = check(model)
    if not applicable:
        raise RecipeError(f"{config.method} pruning does not apply to this model: {reason}")
    if config.fine_tune_on == ORIGINAL_OUTPUTS:  # the original's outputs are the targets: any samples will do
        if data is None:
            raise RecipeError(NEEDS_SAMPLES)
        example = recipe_example(model, data, example)
        result = run(model, data, config, report, example=example, checkpoint_dir=checkpoint_dir,
                     objective=objective_for(config, model, data, example))
    else:
        data = require_labels(data)
        example = recipe_example(model, data, example)
        result = run(model, data, config, report, example=example, checkpoint_dir=checkpoint_dir)
    if config.method != STRUCTURED:
        attach_sparse_file(result)
    return result


def attach_sparse_file(result: RecipeResult) -> None:
    """Add the compressed sparse state dict as an extra download, with its size against the dense one."""
    state = {name: tensor for name, tensor in result.model.state_dict().items() if isinstance(tensor, torch.Tensor)}
    data = encode_state_dict(state)
    dense = dense_size(state)
    result.extras["sparse_state_dict"] = {
        "file": SPARSE_FILE, "size_bytes": len(data), "dense_bytes": dense, "ratio": round(len(data) / dense, 4)}
    result.extra_files = {SPARSE_FILE: data}  # job_runner.run_recipe writes each beside the model files
    result.notes.append(f"{SPARSE_FILE}: the weights without their zeros (bitmask + non-zero values, deflated), "
                        f"{len(data) / dense:.0%} of the dense state dict; formats.sparse_state_dict reads it")
