"""weight_only_int8 / weight_only_int4 for Hugging Face language models: integer weights, float activations.

Every linear layer (and GPT-2's Conv1D, a linear layer stored transposed) becomes an `Int8Linear` (int8, one scale
per output channel) or an `Int4Linear` (int4 per group of `config.group_size` inputs), and every embedding table an
`Int8Embedding` (int8, one scale per row); the layers are in `weight_only_modules`. A decoder's time and size go to
its weights, which now take a quarter (int8) or about an eighth (int4) of the bytes. The result is traced to
TorchScript, the one format that holds these layers.

A token embedding tied to the output head (Llama, SmolLM, GPT-2 share one matrix) is one int8 matrix serving both,
stored once; it is one unit for the accuracy budget, named after the embedding, and stays int8 under
weight_only_int4 (the head reads the embedding's table). Int4 layers whose shape aten's int4 kernel refuses (output
width not a multiple of 16, input width not a multiple of the group) are stored int8 and said so.
"""
import copy
import warnings
from typing import Any

import torch
from torch import nn

from optimizers.errors import RecipeError
from optimizers.recipes.quantize.quantizer import Quantizer, kept
from optimizers.recipes.quantize.weight_only_modules import (
    SMALL_ROWS,
    Int4Linear,
    Int8Embedding,
    Int8Linear,
    int4_fits,
    int4_groups,
    int8_rows,
    scripted,
)

_OTHER_SHAPE = (2, 3)  # batch and sequence length the traced result is checked at, unlike any example's


def _conv1d_type() -> type | None:
    """transformers' Conv1D (GPT-2): a linear layer whose weight is stored [in, out]."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        return None
    return Conv1D


class WeightOnlyQuantizer(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bits = 4 if self.route.name == "weight_only_int4" else 8
        self.group_size = self.config.group_size
        self._linears, self._embeddings, self._tied_heads = _targets(self.model, self.config.layers == "linear")
        self._cache: dict[str, nn.Module] = {}
        self._int8_fallbacks: set[str] = set()
        self._shape_note_added = False
        self.backend = self.route.backend + (f", groups of {self.group_size}" if self.bits == 4 else "") + \
            ", saved as TorchScript"
        self.notes = [self._weights_note(), _compute_note(self.bits)]
        if self._tied_heads:
            self.notes.append(_tied_note(self._tied_heads, self.bits))

    def layers(self) -> list[str]:
        return [*self._embeddings, *self._linears]

    def layer_weights(self, layer: str) -> int:
        module = self.model.get_submodule(layer)
        return module.weight.numel()

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> nn.Module:
        chosen = kept(self.layers(), keep_float)
        replaced = {name: self._quantized(name) for name in chosen}
        for embedding, head in self._tied_heads.items():
            if embedding in replaced:
                replaced[head] = self._quantized_head(embedding, head)
        # The float weights about to be replaced are not copied: a placeholder stands in for each.
        memo: dict[int, Any] = {id(self.model.get_submodule(name).weight): nn.Parameter(torch.empty(0))
                                for name in replaced}
        result = copy.deepcopy(self.model, memo)
        for name, module in replaced.items():
            result.set_submodule(name, module)
        if self.bits == 4 and self._int8_fallbacks:
            self._fallback_note()
        return result.eval()

    def finish(self, quantized: nn.Module) -> torch.jit.ScriptModule:
        if self.example is None:
            raise RecipeError("weight-only quantization traces the result to TorchScript and needs the model's "
                              "example input (its token-id shape)")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(quantized, _trace_input(self.example), check_trace=False).eval()
        self._check_other_shape(quantized, traced)
        return traced

    # -- building the layers -------------------------------------------------------------------------------

    def _quantized(self, name: str) -> nn.Module:
        """The layer's quantized module, made once: the budget asks for the same layers many times."""
        if name not in self._cache:
            self.stop_if_cancelled()
            module = self.model.get_submodule(name)
            if isinstance(module, nn.Embedding):
                built = Int8Embedding(*int8_rows(module.weight, self.config.per_channel))
            else:
                built = self._linear(name, *_linear_weight(module))
            self._cache[name] = scripted(built)
        return self._cache[name]

    def _linear(self, name: str, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        out_features, in_features = weight.shape
        if self.bits == 4 and int4_fits(out_features, in_features, self.group_size):
            return Int4Linear(*int4_groups(weight, self.group_size), bias, self.group_size)
        if self.bits == 4:
            self._int8_fallbacks.add(name)
        return Int8Linear(*int8_rows(weight, self.config.per_channel), bias)

    def _quantized_head(self, embedding: str, head: str) -> nn.Module:
        """The output head tied to `embedding`: the same int8 tensors, read as a linear layer."""
        key = f"{head} (tied)"
        if key not in self._cache:
            table = self._quantized(embedding)
            bias = getattr(self.model.get_submodule(head), "bias", None)
            self._cache[key] = scripted(Int8Linear(table.weight, table.scale, bias))
        return self._cache[key]

    # -- notes -----------------------------------------------------------------------------------------------

    def _weights_note(self) -> str:
        linear = ("int8 with one scale per output channel" if self.bits == 8 else
                  f"int4 with a bfloat16 scale and zero per group of {self.group_size} inputs")
        tables = "" if not self._embeddings else "; embedding tables are int8 with one scale per row"
        return f"{len(self._linears)} linear layer(s) store their weights {linear}{tables}; activations stay float"

    def _fallback_note(self) -> None:
        note = (f"{len(self._int8_fallbacks)} linear layer(s) are int8, not int4: aten's int4 kernel needs an output "
                f"width that is a multiple of 16 and an input width that is a multiple of the group "
                f"({self.group_size}) ({', '.join(sorted(self._int8_fallbacks)[:5])})")
        self.notes = [existing for existing in self.notes if "are int8, not int4" not in existing] + [note]

    def _check_other_shape(self, quantized: nn.Module, traced: torch.jit.ScriptModule) -> None:
        """The traced file must answer like the module at a batch and length other than the example's."""
        if self._shape_note_added or self.example.dim() != 2 or self.example.is_floating_point():
            return  # token ids [batch, length] only: other inputs have no length to vary
        other = torch.zeros(_OTHER_SHAPE, dtype=self.example.dtype)
        with torch.no_grad():
            try:
                same = torch.allclose(traced(other), quantized(other), rtol=1e-3, atol=1e-3)
            except Exception:  # noqa: BLE001 - a shape the trace froze fails in whatever way torch fails
                same = False
        if not same:
            shape = "x".join(str(size) for size in self.example.shape)
            self.notes.append(f"the traced model.pt answers correctly only for inputs of shape {shape}: this "
                              "architecture's code fixes shapes when traced")
            self._shape_note_added = True


def _trace_input(example: torch.Tensor) -> torch.Tensor:
    """The input the result is traced with: the example, made two tokens long if it has one.

    transformers' attention decides once, in Python, whether to mask causally (only for more than one token), so a
    trace of a one-token input would attend to every position of longer inputs. Traced with two or more tokens the
    causal path is recorded, which is also right for one token (one query, one key)."""
    if example.dim() == 2 and example.shape[1] < 2 and not example.is_floating_point():
        return torch.zeros(example.shape[0], 2, dtype=example.dtype)
    return example


def _targets(model: nn.Module, linear_only: bool) -> tuple[list[str], list[str], dict[str, str]]:
    """(linear layer names, embedding names, {tied embedding: its output head}), in model order.

    A head whose weight is an embedding's is not a layer of its own: it follows the embedding. With `linear_only`
    embeddings stay float, and so do the heads tied to them (an int8 copy would be stored beside the float table).
    """
    conv1d = _conv1d_type()
    linear_types = (nn.Linear, conv1d) if conv1d is not None else (nn.Linear,)
    embeddings = {name: module for name, module in model.named_modules() if type(module) is nn.Embedding}
    owner_of_weight = {id(module.weight): name for name, module in embeddings.items()}
    linears, tied = [], {}
    for name, module in model.named_modules():
        if not isinstance(module, linear_types):
            continue
        owner = owner_of_weight.get(id(module.weight))
        if owner is not None:
            tied[owner] = name
        else:
            linears.append(name)
    if linear_only:
        return linears, [], {}
    return linears, list(embeddings), tied


def _linear_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [out, in], bias or None) of nn.Linear or transformers' Conv1D (whose weight is [in, out])."""
    weight = module.weight.detach()
    return (weight if isinstance(module, nn.Linear) else weight.t()), module.bias


def _compute_note(bits: int) -> str:
    return (f"each quantized layer rounds its input to bfloat16: inputs of up to {SMALL_ROWS[bits]} rows (tokens "
            f"times sequences) run aten's int{bits} weight-only kernel, longer ones dequantize the weights to "
            "bfloat16 for one matrix multiply")


def _tied_note(tied: dict[str, str], bits: int) -> str:
    pairs = ", ".join(f"{head} reads {embedding}" for embedding, head in tied.items())
    also = "; it stays int8 under int4, as the embedding is" if bits == 4 else ""
    return f"tied weights are one int8 matrix, stored once ({pairs}){also}"
