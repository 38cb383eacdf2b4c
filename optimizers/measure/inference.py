"""Measurements shared by every recipe's before/after report.

Numbers are only comparable when taken the same way: same example input, same thread count,
inference mode, warm-up runs discarded. Parameter counts cover what can be counted without
running the model; see `count_parameters` for what that means for quantized models.
"""

import contextlib
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of weight values the model stores, whatever their precision.

    Counted: parameters; int8 buffers (the weight-only int8 rewrite stores weights that way);
    for TorchScript, tensors frozen into the graph as constants (quantize_dynamic_jit freezes
    the model, turning parameters into constants) and the weights and biases inside packed
    quantized Linear parameters, which are not parameters at all; int4 weights, stored two a byte in
    uint8 buffers named `nibbles` (the weight-only int4 layers). Not counted: buffers that hold
    statistics or scales (batch-norm running means, per-channel scales).
    """
    return sum(tensor.numel() for tensor in weight_tensors(module)) + _int4_values(module)


def count_nonzero_parameters(module: nn.Module) -> int:
    """Like `count_parameters`, counting only the values that are not zero (what pruning removes)."""
    total = 0
    for tensor in weight_tensors(module):
        # A quantized value is zero when it equals its zero point, which dequantize maps to exactly 0.
        total += int(torch.count_nonzero(tensor.dequantize() if tensor.is_quantized else tensor))
    return total + _int4_values(module)  # which nibble means zero depends on its group: counted as kept


def _int4_values(module: nn.Module) -> int:
    return sum(2 * buffer.numel() for name, buffer in module.named_buffers()
               if name.rsplit(".", 1)[-1] == "nibbles" and buffer.dtype == torch.uint8)


def weight_tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    """Every tensor `count_parameters` counts, each once."""
    yield from module.parameters()
    yield from (b for b in module.buffers() if b.dtype == torch.int8)
    if isinstance(module, torch.jit.ScriptModule):
        yield from _torchscript_extras(module)


def _torchscript_extras(module: torch.jit.ScriptModule) -> Iterator[torch.Tensor]:
    for _, submodule in module.named_modules():
        if submodule.original_name == "LinearPackedParams":
            # An eager-quantized Linear, scripted or traced: its packed weights hang on this wrapper module.
            yield from _unpacked(submodule._c.getattr("_packed_params"))
            continue
        if not submodule._c._has_method("forward"):  # containers (ModuleList) have no code
            continue
        self_value = next(submodule.graph.inputs())
        for node in submodule.graph.nodes():
            if node.kind() == "prim::Constant" and node.output().type().kind() == "TensorType":
                yield node.t("value")
            elif (node.kind() == "prim::GetAttr" and node.inputsAt(0).unique() == self_value.unique()
                  and node.output().type().str().endswith("PackedParamsBase")):
                # packed quantized weights (Linear or Conv): the custom class itself, not a wrapper module
                yield from _unpacked(submodule._c.getattr(node.s("name")), node.output().type().str())


_UNPACK = {"LinearPackedParamsBase": "linear_unpack", "Conv2dPackedParamsBase": "conv2d_unpack",
           "Conv3dPackedParamsBase": "conv3d_unpack"}


def _unpacked(packed, type_name: str = "LinearPackedParamsBase") -> Iterator[torch.Tensor]:
    unpack = next((getattr(torch.ops.quantized, op) for suffix, op in _UNPACK.items() if type_name.endswith(suffix)),
                  None)
    if unpack is None:
        return  # a packed kind we do not know how to open: not counted (rather than guessed)
    weight, bias = unpack(packed)
    yield weight
    if bias is not None:
        yield bias


def inference_context(module: nn.Module) -> contextlib.AbstractContextManager:
    """inference_mode, except no_grad for TorchScript.

    TorchScript's executor caches a plan per grad mode; a module first run with grad enabled
    then fails under inference_mode ("Inference tensors cannot be saved for backward").
    no_grad avoids that and costs TorchScript nothing measurable.
    """
    if isinstance(module, torch.jit.ScriptModule):
        return torch.no_grad()
    return torch.inference_mode()


def run_model(module: nn.Module, example: torch.Tensor) -> Any:
    """One forward pass without autograd, the way every measurement here runs the model."""
    with inference_context(module):
        return module(example)


def latency_ms(
    module: nn.Module, example: torch.Tensor, repeats: int = 30, warmup: int = 5, budget_s: float = 20.0
) -> dict[str, Any]:
    """Wall-clock latency of one forward pass: p50 and p95 in milliseconds, the thread count and
    the number of timed runs.

    A model that takes seconds per call would blow the job's time limit with 35 calls, so
    timing stops once `budget_s` is spent, after at least 3 timed runs.
    """
    # CUDA calls return before the GPU is done; without a sync we would time the launch only.
    finish = (lambda: torch.cuda.synchronize(example.device)) if example.is_cuda else (lambda: None)
    timings: list[float] = []
    deadline = time.perf_counter() + budget_s
    with inference_context(module):
        for _ in range(warmup):
            module(example)
            finish()
            if time.perf_counter() > deadline:
                break
        while len(timings) < repeats and (len(timings) < 3 or time.perf_counter() < deadline):
            started = time.perf_counter()
            module(example)
            finish()
            timings.append((time.perf_counter() - started) * 1000.0)
    return {
        "p50": round(percentile(timings, 50), 4),
        "p95": round(percentile(timings, 95), 4),
        "threads": torch.get_num_threads(),
        "runs": len(timings),
    }


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile: always one of the measured values, never an interpolation."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]


def output_tensors(output: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a model's output, in order, through tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, list | tuple):
        for item in output:
            yield from output_tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from output_tensors(item)


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two model outputs (tensors or nested containers)."""
    left, right = list(output_tensors(a)), list(output_tensors(b))
    if len(left) != len(right):
        raise ValueError(f"the outputs hold different numbers of tensors: {len(left)} and {len(right)}")
    worst = 0.0
    for x, y in zip(left, right, strict=True):
        if x.shape != y.shape:
            raise ValueError(f"output shapes differ: {list(x.shape)} and {list(y.shape)}")
        if x.numel():
            worst = max(worst, (x.detach().double() - y.detach().double()).abs().max().item())
    return worst


def max_abs(output: Any) -> float:
    """Largest absolute output value: the scale a difference should be judged against."""
    values = [t.detach().double().abs().max().item() for t in output_tensors(output) if t.numel()]
    return max(values, default=0.0)


def file_size(path: str | os.PathLike) -> int:
    return os.path.getsize(path)
