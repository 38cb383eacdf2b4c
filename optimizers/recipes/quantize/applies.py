"""Can `quantize` do anything for this model, and why: the model page's answer, before anything runs.

Per-variant answers (which variant applies to which kind of model, with or without a dataset) come from
the table in `optimizers.configs.quantize_routes`; this looks inside the model: is there anything to quantize, and is
it already quantized.
"""
from typing import Any

import torch
from torch import nn

from optimizers.recipes.quantize.inputs import model_kind
from optimizers.recipes.quantize.int8_weights import linear_weight_targets

_JIT_LAYERS = {"aten::linear": "Linear", "aten::conv1d": "convolution", "aten::conv2d": "convolution",
               "aten::conv3d": "convolution", "aten::_convolution": "convolution"}
_EAGER_LAYERS = {nn.Linear: "Linear", nn.Conv1d: "convolution", nn.Conv2d: "convolution", nn.Conv3d: "convolution",
                 nn.LSTM: "LSTM", nn.GRU: "GRU"}
_EXPORT_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default)
_ONNX_LAYERS = {"MatMul": "MatMul/Gemm", "Gemm": "MatMul/Gemm", "Conv": "convolution"}
_ONNX_QUANTIZED = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul",
                   "QLinearConv")
ONLY_CASTS = "no Linear, convolution or recurrent layers to store as int8: only fp16 and bf16 apply"


def quantize_applies(model: Any) -> tuple[bool, str]:
    already = _already_quantized(model)
    if already:
        return False, already
    counts = layer_counts(model)
    if not counts:
        return True, ONLY_CASTS
    listed = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    return True, f"{listed} layer(s) can be quantized"


def layer_counts(model: Any) -> dict[str, int]:
    """{"Linear": 3, "convolution": 2, ...}: the layers some variant can store in low precision."""
    kinds = _layer_kinds(model)
    return {kind: kinds.count(kind) for kind in dict.fromkeys(kinds)}


def _layer_kinds(model: Any) -> list[str]:
    kind = model_kind(model)
    if kind == "torchscript":
        return [_JIT_LAYERS[node.kind()] for node in model.inlined_graph.nodes() if node.kind() in _JIT_LAYERS]
    if kind == "export":
        convs = sum(node.target in _EXPORT_CONVS for node in model.graph.nodes if node.op == "call_function")
        return ["Linear"] * len(linear_weight_targets(model)) + ["convolution"] * convs
    if kind == "onnx":
        graph = _onnx_graph(model)
        weights = {tensor.name for tensor in graph.initializer}
        return [_ONNX_LAYERS[node.op_type] for node in graph.node
                if node.op_type in _ONNX_LAYERS and any(name in weights for name in node.input)]
    return [_EAGER_LAYERS[type(module)] for module in model.modules() if type(module) in _EAGER_LAYERS]


def _onnx_graph(model: Any):
    import onnx  # half a second to import: only for ONNX models, not in every job's sandbox child

    return onnx.load(model.onnx_path, load_external_data=False).graph


def _already_quantized(model: Any) -> str | None:
    kind = model_kind(model)
    if kind == "torchscript":
        if any(node.kind().startswith("quantized::") for node in model.inlined_graph.nodes()):
            return "the model's layers are already quantized"
    elif kind == "export":
        if not linear_weight_targets(model) and any(b.dtype == torch.int8 for b in model.buffers()):
            return "the model's Linear weights are already stored as int8"
    elif kind == "onnx":
        graph = _onnx_graph(model)
        if any(node.op_type in _ONNX_QUANTIZED for node in graph.node):
            return "the ONNX model is already quantized"
    elif any(type(module).__module__.startswith("torch.ao.nn.quantized") for module in model.modules()):
        return "the model's layers are already quantized"
    return None


def nothing_to_quantize(variant: str, model: Any) -> str:
    counts = layer_counts(model)
    found = ", ".join(f"{count} {kind}" for kind, count in counts.items()) or "none"
    return f"nothing to quantize: {variant} found no layer it handles in this model (quantizable layers: {found})"
