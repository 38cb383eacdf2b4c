"""fp16 and bf16: weights and compute in half precision, float32 at the model's boundary.

The model's floating-point weights are cast, and a thin wrapper casts float inputs on the way in and
floating outputs back to float32 on the way out: callers keep passing float32 (the example input, a
dataset) and get float32, and every format that can hold half-precision weights can be written. Integer
inputs (token ids) pass through untouched. On an x86 CPU with AMX, bf16 matmuls run about twice as fast
as float32; fp16 mostly saves space.
"""
import copy

import torch
from torch import fx, nn

from optimizers.recipes.quantize.dynamic import private_copy
from optimizers.recipes.quantize.int8_weights import copy_keeping_ties
from optimizers.recipes.quantize.quantizer import Quantizer

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class CastAtBoundary(nn.Module):
    """Runs `inner` (already cast to `dtype`) on float32 inputs and returns float32 outputs."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.inner(x.to(self.dtype) if x.is_floating_point() else x)
        return output.float() if output.is_floating_point() else output


class CastQuantizer(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.variant = self.route.name.removeprefix("cast_")
        self.dtype = DTYPES[self.variant]
        self.notes = [f"weights are {self.variant}; float inputs are cast to {self.variant} on the way in and "
                      "outputs back to float32, so callers still pass float32"]

    def layers(self) -> list[str]:
        return []  # the cast is all or nothing; the accuracy budget is for the integer variants

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> nn.Module:
        # Module.to() casts parameters in place: any tensor shared with the caller's model must be copied first.
        if isinstance(self.model, torch.jit.ScriptModule):
            inner = private_copy(self.model).to(self.dtype)
            return torch.jit.script(CastAtBoundary(inner, self.dtype))
        # A loaded .pt2 holds tied weights as separate tensors over one storage; a plain deepcopy would untie them.
        inner = copy_keeping_ties(self.model) if isinstance(self.model, fx.GraphModule) else copy.deepcopy(self.model)
        return CastAtBoundary(inner.to(self.dtype), self.dtype).eval()
