"""Time each candidate Linear layer dense against 2:4 sparse on the GPU (CUDA only; imported on use).

Each layer is timed on inputs of the shape it really sees at batch 32 (found by running the model once
on the CPU with hooks), in fp16, the dtype the sparse kernels are fastest in. Times are medians of CUDA
event timings over loops of several calls, so launch overhead is shared out rather than dominating.
"""
import statistics

import torch
from torch import nn
from torch.nn import functional as F

from optimizers.errors import first_line
from optimizers.recipes.prune.two_four import LayerTiming, two_four_mask

CALLS_PER_TIMING, TIMINGS, WARMUP = 20, 15, 5
ROW_MULTIPLE = 8  # dense operands of the sparse kernels need rows in multiples of 8


def time_layers(model: nn.Module, layers: dict[str, nn.Linear], example: torch.Tensor, batch: int
                ) -> tuple[dict[str, LayerTiming], dict[str, str]]:
    """({layer: dense and 2:4 times}, {layer: why it could not be timed}) on the current CUDA device."""
    rows = _input_rows(model, layers, example, batch)
    timings, skipped = {}, {}
    for name, layer in layers.items():
        try:
            timings[name] = _time_layer(layer, rows[name])
        except RuntimeError as error:  # a shape or dtype this build's kernels refuse
            skipped[name] = first_line(error)
    return timings, skipped


def _input_rows(model: nn.Module, layers: dict[str, nn.Linear], example: torch.Tensor, batch: int) -> dict[str, int]:
    """How many input rows each layer multiplies per call at `batch` (tokens x batch for sequence models)."""
    rows: dict[str, int] = {}
    hooks = [layer.register_forward_hook(_recorder(name, rows)) for name, layer in layers.items()]
    batched = example.expand(batch, *example.shape[1:]).contiguous() if example.dim() and example.shape[0] == 1 \
        else example
    try:
        with torch.no_grad():
            model(batched)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: rows.get(name, batch) for name in layers}


def _recorder(name: str, rows: dict[str, int]):
    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        rows[name] = inputs[0].numel() // inputs[0].shape[-1]
    return record


def _time_layer(layer: nn.Linear, rows: int) -> LayerTiming:
    from torch.sparse import to_sparse_semi_structured

    device = torch.device("cuda")
    weight = layer.weight.detach().to(device, torch.float16)
    weight = weight * two_four_mask(weight)
    bias = None if layer.bias is None else layer.bias.detach().to(device, torch.float16)
    padded_rows = -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE
    inputs = torch.randn(padded_rows, layer.in_features, device=device, dtype=torch.float16)
    sparse = to_sparse_semi_structured(weight)
    with torch.no_grad():
        dense_ms = _median_ms(lambda: F.linear(inputs, weight, bias))
        sparse_ms = _median_ms(lambda: F.linear(inputs, sparse, bias))
    return LayerTiming(round(dense_ms, 5), round(sparse_ms, 5))


def _median_ms(call) -> float:
    for _ in range(WARMUP):
        call()
    torch.cuda.synchronize()
    samples = []
    for _ in range(TIMINGS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(CALLS_PER_TIMING):
            call()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / CALLS_PER_TIMING)
    return statistics.median(samples)
