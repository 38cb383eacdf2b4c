"""Which weights can be pruned, and the masks that zero them: shared by the prune methods.

Masks are plain boolean tensors kept beside the weights, applied by multiplying in place. Unlike
torch.nn.utils.prune (weight_orig * weight_mask) nothing in the module changes: parameter names, the
state dict, checkpoints and torch.export graphs stay as they were, and the zeros are permanent as soon
as the last mask is applied.
"""
import copy
import warnings
from dataclasses import dataclass

import torch
from torch import fx, nn

aten = torch.ops.aten
# Ops whose second argument is a weight worth pruning, as torch.export graphs (.pt2 uploads) record them.
_GRAPH_WEIGHT_OPS = {aten.linear.default: "Linear", aten.conv1d.default: "Conv", aten.conv2d.default: "Conv",
                     aten.conv3d.default: "Conv", aten.convolution.default: "Conv"}
Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class WeightLayer:
    name: str  # the weight's parameter name, as in named_parameters()
    weight: nn.Parameter
    kind: str  # "Linear" or "Conv"


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy to prune, so the caller's model is never changed."""
    with warnings.catch_warnings():
        # Copying a torch.export graph module trips a deprecation inside torch's pytree code, not ours to fix.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        return copy.deepcopy(model)


def weight_layers(model: nn.Module) -> list[WeightLayer]:
    """The Linear and convolution weights of an eager module or a torch.export graph, in forward order.

    A weight shared by several layers (tied embeddings) is listed once.
    """
    found, seen = [], set()
    for name, parameter, kind in _candidates(model):
        if id(parameter) not in seen and parameter.is_floating_point():
            seen.add(id(parameter))
            found.append(WeightLayer(name, parameter, kind))
    return found


def _candidates(model: nn.Module):
    if isinstance(model, fx.GraphModule):
        parameters = dict(model.named_parameters())
        for node in model.graph.nodes:
            kind = _GRAPH_WEIGHT_OPS.get(node.target) if node.op == "call_function" else None
            weight = node.args[1] if kind and len(node.args) > 1 else None
            if isinstance(weight, fx.Node) and weight.op == "get_attr" and weight.target in parameters:
                yield weight.target, parameters[weight.target], kind
        return
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.modules.conv._ConvNd) and isinstance(module.weight, nn.Parameter):
            kind = "Linear" if isinstance(module, nn.Linear) else "Conv"
            yield (f"{module_name}.weight" if module_name else "weight"), module.weight, kind


def classifier_name(layers: list[WeightLayer]) -> str | None:
    """The final classifier's weight: the last Linear layer (in forward order), if any."""
    linears = [layer.name for layer in layers if layer.kind == "Linear"]
    return linears[-1] if linears else None


def prunable(model: nn.Module, ignore_classifier: bool) -> dict[str, nn.Parameter]:
    layers = weight_layers(model)
    skipped = classifier_name(layers) if ignore_classifier else None
    return {layer.name: layer.weight for layer in layers if layer.name != skipped}


def agp_sparsity(step: int, steps: int, target: float) -> float:
    """Automated Gradual Pruning (Zhu & Gupta, 2017): the sparsity after `step` of `steps`, cubic in time.

    Early steps remove many weights while plenty are redundant; late ones few, leaving time to recover.
    """
    return target * (1.0 - (1.0 - step / steps) ** 3)


def global_magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float, previous: Masks | None = None
                           ) -> Masks:
    """Masks keeping the largest-magnitude weights across all tensors, zeroing exactly round(sparsity x total).

    Weights already masked stay masked (a gradual schedule only ever removes more).
    """
    previous = previous or {}
    scores = []
    for name, weight in weights.items():
        score = weight.detach().abs().flatten().float()
        if name in previous:
            score = score.masked_fill(~previous[name].flatten(), -1.0)  # below every live weight
        scores.append(score)
    flat = torch.cat(scores)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    pruned = round(sparsity * flat.numel())
    if pruned:
        keep[torch.topk(flat, pruned, largest=False, sorted=False).indices] = False
    masks, start = {}, 0
    for name, weight in weights.items():
        masks[name] = keep[start:start + weight.numel()].reshape(weight.shape)
        start += weight.numel()
    return masks


@torch.no_grad()
def apply_masks(weights: dict[str, torch.Tensor], masks: Masks) -> None:
    for name, mask in masks.items():
        weights[name].mul_(mask.to(weights[name].device, weights[name].dtype))


def sparsity(weights: dict[str, torch.Tensor]) -> float:
    """Fraction of exact zeros among these tensors."""
    total = sum(weight.numel() for weight in weights.values())
    zeros = sum(int((weight == 0).sum()) for weight in weights.values())
    return zeros / total if total else 0.0
