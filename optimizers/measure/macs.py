"""Multiply-accumulates of one forward pass on the example input.

Torch models (eager, TorchScript, torch.export graph modules) are counted by running them under
`FlopCounterMode`, which sees every ATen op, TorchScript's included; it counts 2 FLOPs per
multiply-accumulate of matmul-like ops (linear, matmul, convolution, attention) and ignores
element-wise ops, so MACs = FLOPs / 2. Dynamic int8 Linear layers (`quantized::linear_dynamic`)
are not ATen ops; their formula below reads the layer's shape from its packed weights. aten's weight-only int8
and int4 matmuls (the weight-only variants' layers) have no formula in torch: theirs are below too. ONNX
models run in onnxruntime, out of torch's sight, so their MACs come from the graph itself
(see `optimizers.measure.onnx_macs`).
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from optimizers.errors import first_line
from optimizers.measure.inference import inference_context

MacsResult = tuple[int | None, str | None]  # (MACs, note saying what was not counted, or why none)

# Quantized ops whose packed parameters unpack with quantized::linear_unpack.
_PACKED_LINEARS = ("linear_dynamic", "linear")


def count_macs(model: Any, example: torch.Tensor) -> MacsResult:
    """MACs of `model(example)`; (None, reason) when they cannot be counted."""
    onnx_path = getattr(model, "onnx_path", None)
    if onnx_path is not None:
        from optimizers.measure.onnx_macs import onnx_macs  # onnx is imported only for ONNX models

        return onnx_macs(onnx_path, tuple(example.shape))
    try:
        flops = _count_flops(model, example)
    except Exception as error:  # noqa: BLE001 - counting is best effort, the report goes on
        return None, f"MACs could not be counted: {first_line(error)}"
    uncounted = _uncounted_quantized_ops(model)
    if uncounted:
        # A partial count would make a quantized model look cheaper than it is: say so instead of a number.
        return None, f"MACs not counted: the model uses {', '.join(uncounted)}, which has no MAC formula here"
    return flops // 2, None


def _count_flops(model: Any, example: torch.Tensor) -> int:
    mapping = {getattr(torch.ops.quantized, name): _packed_linear_flops for name in _PACKED_LINEARS}
    mapping[torch.ops.aten._weight_int8pack_mm] = _int8_weight_flops
    mapping[torch.ops.aten._weight_int4pack_mm_for_cpu] = _int4_weight_flops
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with _without_importing_dynamo(), inference_context(model), counter:
        model(example)
    return int(counter.get_total_flops())


@contextmanager
def _without_importing_dynamo() -> Iterator[None]:
    """torch wraps every dispatch mode's handler so that torch.compile never traces into it, and the wrapper
    imports torch._dynamo on its first call: a second of every inspection and job. Where dynamo has not even
    been imported nothing is being compiled, so for the count the wrapper is told to call the handler as it is
    (the attribute it caches its dynamo-disabled handler in) and forgets it afterwards. Where torch's internals
    differ, the count simply runs as torch wraps it."""
    handler = getattr(getattr(flop_counter, "_FlopCounterMode", None), "__torch_dispatch__", None)
    raw = getattr(handler, "__wrapped__", None)
    if "torch._dynamo" in sys.modules or raw is None or hasattr(raw, "__dynamo_disable"):
        yield
        return
    setattr(raw, "__dynamo_disable", raw)
    try:
        yield
    finally:
        delattr(raw, "__dynamo_disable")


def _packed_linear_flops(input_shape: torch.Size, packed_params: Any, *args: Any, **kwargs: Any) -> int:
    """2 * rows * in * out for a quantized Linear; called by FlopCounterMode with tensor shapes."""
    weight, _ = torch.ops.quantized.linear_unpack(packed_params)
    out_features, in_features = weight.shape
    rows = torch.Size(input_shape).numel() // in_features
    return 2 * rows * in_features * out_features


def _int8_weight_flops(input_shape: torch.Size, weight_shape: torch.Size, *args: Any, **kwargs: Any) -> int:
    """2 * rows * in * out for aten's weight-only int8 matmul: input [rows, in], int8 weight [out, in]."""
    rows, in_features = input_shape
    return 2 * rows * in_features * weight_shape[0]


def _int4_weight_flops(input_shape: torch.Size, packed_shape: torch.Size, group_size: int,
                       scales_and_zeros_shape: torch.Size, *args: Any, **kwargs: Any) -> int:
    """2 * rows * in * out for aten's weight-only int4 matmul; out is read from its scales [in/group, out, 2]."""
    rows, in_features = input_shape
    return 2 * rows * in_features * scales_and_zeros_shape[1]


def _uncounted_quantized_ops(model: Any) -> list[str]:
    """quantized:: ops in a TorchScript graph that FlopCounterMode has no formula for (static int8 conv, say)."""
    if not isinstance(model, torch.jit.ScriptModule):
        return []
    counted = {f"quantized::{name}" for name in _PACKED_LINEARS}
    kinds = {node.kind() for node in model.inlined_graph.nodes()}
    return sorted(kind for kind in kinds if kind.startswith("quantized::") and kind not in counted
                  and not kind.endswith(("unpack", "prepack")))
