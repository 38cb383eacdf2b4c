"""The units structured pruning removes from a transformers model, and the surgery that removes them.

A unit is an attention head or a feed-forward neuron; what each is made of differs by model family, and removing one
means narrowing several Linear layers and the head counts in step. Kept apart from the recipe
(`transformers_structured`: targets, AGP steps, fine-tuning) so that supporting another family, or another way of
ranking by weights, touches this module alone.
"""
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from optimizers.errors import RecipeError
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.recipes.distill.shallower_transformers import layer_stack

GPT2_REFUSAL = ("GPT-2 keeps query, key and value in one fused Conv1D (c_attn) and its feed-forward in Conv1D "
                "layers: removing heads and neurons is built for BERT, Llama, Qwen2 and Mistral only; unstructured "
                "pruning applies")


@dataclass
class _Heads:
    attention: nn.Module  # BertSelfAttention: query, key, value and the head counts
    output: nn.Module  # BertSelfOutput: `dense` takes the heads' concatenated outputs

    @property
    def count(self) -> int:
        return self.attention.num_attention_heads


@dataclass
class _Neurons:
    owner: nn.Module  # BertLayer or LlamaMLP
    inputs: tuple[str, ...]  # paths below owner of the projections whose rows are the neurons
    output: str  # path of the projection whose columns are

    @property
    def count(self) -> int:
        return self.owner.get_submodule(self.inputs[0]).out_features


@dataclass
class Layer:
    heads: _Heads | None  # None: heads are kept (grouped key/value heads)
    neurons: _Neurons


def layers(model: TokenIdsModel) -> list[Layer]:
    family = model.folder.model_type
    if family == "gpt2":
        raise RecipeError(GPT2_REFUSAL)
    found = []
    for index, layer in enumerate(layer_stack(model)):
        try:
            if family == "bert":
                if getattr(layer, "crossattention", None) is not None:
                    raise RecipeError("a BERT decoder with cross-attention: removing heads is built for encoders")
                heads = _Heads(layer.attention.self, layer.attention.output)
                for name in ("query", "key", "value"):
                    _linear(heads.attention, name)
                _linear(heads.output, "dense")
                found.append(Layer(heads, _Neurons(layer, ("intermediate.dense",), "output.dense")))
            else:  # llama, qwen2, mistral
                found.append(Layer(None, _Neurons(layer.mlp, ("gate_proj", "up_proj"), "down_proj")))
            neurons = found[-1].neurons
            for path in (*neurons.inputs, neurons.output):
                _linear(neurons.owner, path)
        except AttributeError as error:
            raise RecipeError(f"layer {index} of the {model.folder.architecture} does not have the parts of a "
                              f"{family} layer ({error})") from error
    return found


def _linear(owner: nn.Module, path: str) -> nn.Linear:
    module = owner.get_submodule(path)
    if not isinstance(module, nn.Linear):
        raise RecipeError(f"{path} is a {type(module).__name__}, not a Linear layer")
    return module


def counts(layers: list[Layer]) -> list[tuple[int, int]]:
    """(heads, neurons) per layer; heads 0 where heads are kept whole."""
    return [(layer.heads.count if layer.heads else 0, layer.neurons.count) for layer in layers]


def scores(layer: Layer, taylor: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(head scores or None, neuron scores) of one layer: larger is more important."""
    heads = None
    if layer.heads is not None:
        attention, count = layer.heads.attention, layer.heads.count
        heads = sum(_saliency(getattr(attention, name), taylor, rows=True).reshape(count, -1).sum(dim=1)
                    for name in ("query", "key", "value"))
        heads = heads + _saliency(layer.heads.output.dense, taylor, rows=False).reshape(count, -1).sum(dim=1)
    neurons = layer.neurons
    scores = sum(_saliency(neurons.owner.get_submodule(path), taylor, rows=True) for path in neurons.inputs)
    scores = scores + _saliency(neurons.owner.get_submodule(neurons.output), taylor, rows=False)
    return heads, scores


def _saliency(linear: nn.Linear, taylor: bool, *, rows: bool) -> torch.Tensor:
    """Per output row (rows=True, bias included) or per input column: sum of w^2 (magnitude) or |w x grad|."""
    def measure(parameter: torch.Tensor) -> torch.Tensor:
        if not taylor:
            return parameter.detach().float() ** 2
        if parameter.grad is None:
            raise RecipeError("the taylor criterion found no gradient on a layer: the loss does not reach it")
        return (parameter.detach() * parameter.grad).float().abs()

    weight = measure(linear.weight)
    if not rows:
        return weight.sum(dim=0)
    per_row = weight.sum(dim=1)
    return per_row + measure(linear.bias) if linear.bias is not None else per_row


def remove(layers: list[Layer], scores: list[tuple[torch.Tensor | None, torch.Tensor]],
           kept: list[tuple[int, int]]) -> None:
    for layer, (head_scores, neuron_scores), (heads, neurons) in zip(layers, scores, kept, strict=True):
        if layer.heads is not None and 0 < heads < layer.heads.count:  # 0: heads kept whole
            _keep_heads(layer.heads, _strongest(head_scores, heads))
        if neurons < layer.neurons.count:
            _keep_neurons(layer.neurons, _strongest(neuron_scores, neurons))


def _strongest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` highest scores, in their original order (the kept units keep their order)."""
    return torch.topk(scores, count).indices.sort().values


def _keep_heads(heads: _Heads, keep: torch.Tensor) -> None:
    attention = heads.attention
    size = attention.attention_head_size
    rows = (keep[:, None] * size + torch.arange(size)).flatten()
    for name in ("query", "key", "value"):
        setattr(attention, name, _narrowed(getattr(attention, name), rows, rows=True))
    heads.output.dense = _narrowed(heads.output.dense, rows, rows=False)
    attention.num_attention_heads = len(keep)
    attention.all_head_size = len(keep) * size


def _keep_neurons(neurons: _Neurons, keep: torch.Tensor) -> None:
    for path in neurons.inputs:
        _replace(neurons.owner, path, _narrowed(neurons.owner.get_submodule(path), keep, rows=True))
    _replace(neurons.owner, neurons.output, _narrowed(neurons.owner.get_submodule(neurons.output), keep, rows=False))
    if isinstance(getattr(neurons.owner, "intermediate_size", None), int):  # LlamaMLP keeps its width
        neurons.owner.intermediate_size = len(keep)


def _narrowed(linear: nn.Linear, index: torch.Tensor, *, rows: bool) -> nn.Linear:
    """A new Linear holding only the rows (outputs) or columns (inputs) at `index`."""
    weight = linear.weight.detach()
    index = index.to(weight.device)
    weight = weight[index] if rows else weight[:, index]
    bias = linear.bias
    narrowed = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=bias is not None,
                                  device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        narrowed.weight.copy_(weight)
        if bias is not None:
            narrowed.bias.copy_(bias.detach()[index] if rows else bias.detach())
    narrowed.train(linear.training)
    return narrowed


def _replace(owner: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(owner.get_submodule(parent) if parent else owner, name, module)


def keep_config_in_step(model: TokenIdsModel) -> None:
    """The model's config and the folder's follow the neuron count, where every layer has the same."""
    widths = {layer.neurons.count for layer in layers(model)}
    if len(widths) != 1:
        return
    width = widths.pop()
    model.model.config.intermediate_size = width
    model.folder = dataclasses.replace(model.folder, config={**model.folder.config, "intermediate_size": width})
