"""Quantize: store Linear weights as int8.

TorchScript models go through torch.ao's `quantize_dynamic_jit` (int8 weights, activations
quantized on the fly: smaller and usually faster on CPU). torch.export models get the
weight-only int8 rewrite in `optimizers.int8_weights`, because torch 2.13 no longer ships the
pt2e quantizer: smaller on disk, computed in float.
"""

import io
import warnings

import torch
from torch import fx, nn
from torch.ao.quantization import (
    default_dynamic_qconfig,
    per_channel_dynamic_qconfig,
    quantize_dynamic,
    quantize_dynamic_jit,
)

from optimizers.configs import QuantizeConfig
from optimizers.errors import Cancelled, RecipeError
from optimizers.int8_weights import linear_weight_targets, quantize_weights
from optimizers.registry import RecipeResult, register
from optimizers.reporting import Reporter

_JIT_LINEAR = "aten::linear"
_JIT_QUANTIZED_LINEAR = "quantized::linear_dynamic"


def quantize_applies(model: nn.Module) -> tuple[bool, str]:
    """Can `quantize` shrink this model? Answers for the model page, before anything runs."""
    if isinstance(model, torch.jit.ScriptModule):
        kinds = [node.kind() for node in model.inlined_graph.nodes()]
        if _JIT_QUANTIZED_LINEAR in kinds:
            return False, "the model's Linear layers are already quantized"
        linear_count = kinds.count(_JIT_LINEAR)
    elif isinstance(model, fx.GraphModule):
        linear_count = len(linear_weight_targets(model))
        if linear_count == 0 and any(buffer.dtype == torch.int8 for buffer in model.buffers()):
            return False, "the model's Linear weights are already stored as int8"
    else:  # an eager module, built from a state dict and a zoo architecture
        linear_count = sum(isinstance(module, nn.Linear) for module in model.modules())
    if linear_count == 0:
        return False, "the model has no Linear layers to quantize"
    return True, f"{linear_count} Linear layer(s) can store int8 weights"


@register("quantize", QuantizeConfig, applies_to=quantize_applies)
def quantize(model: nn.Module, data: object, config: QuantizeConfig, report: Reporter) -> RecipeResult:
    """Return an int8 copy of `model`; the input model is never modified. `data` is unused."""
    report.stage("quantize")
    applicable, reason = quantize_applies(model)
    if not applicable:
        raise RecipeError(f"nothing to quantize: {reason}")
    _stop_if_cancelled(report)
    if isinstance(model, torch.jit.ScriptModule):
        return _quantize_torchscript(model, config, report)
    if isinstance(model, fx.GraphModule):
        return _quantize_exported(model, config, report)
    return _quantize_eager(model, config, report)


def _quantize_eager(model: nn.Module, config: QuantizeConfig, report: Reporter) -> RecipeResult:
    qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
    report.progress(0, 1, "quantize")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        quantized = quantize_dynamic(model, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=False)
    report.progress(1, 1, "quantize")
    granularity = "per-channel" if config.per_channel else "per-tensor"
    return RecipeResult(
        model=quantized.eval(),
        backend=f"torch.ao quantize_dynamic ({torch.backends.quantized.engine}), {granularity}, saved as TorchScript",
        notes=["Linear weights are int8; activations are quantized on the fly at each call",
               "int8 packed weights do not fit the architecture's float state dict, so the result is TorchScript"],
        primary_format="torchscript",
    )


def _quantize_torchscript(
    model: torch.jit.ScriptModule, config: QuantizeConfig, report: Reporter
) -> RecipeResult:
    qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
    report.progress(0, 1, "quantize")
    # quantize_dynamic_jit freezes and rewrites graphs; a private copy guarantees the caller's
    # module is untouched whatever it does internally.
    with warnings.catch_warnings():
        # torch.ao reads .grad of frozen non-leaf tensors internally; the warning is not ours to fix.
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
        quantized = quantize_dynamic_jit(_private_copy(model), {"": qconfig})
    report.progress(1, 1, "quantize")
    granularity = "per-channel" if config.per_channel else "per-tensor"
    engine = torch.backends.quantized.engine
    return RecipeResult(
        model=quantized,
        backend=f"torch.ao quantize_dynamic_jit ({engine}), {granularity}",
        notes=[
            "Linear weights are int8; activations are quantized on the fly at each call",
            "the model was frozen: parameters became constants, so it can no longer be trained",
        ],
    )


def _quantize_exported(model: fx.GraphModule, config: QuantizeConfig, report: Reporter) -> RecipeResult:
    def on_layer(done: int, total: int) -> None:
        report.progress(done, total, "quantize")
        _stop_if_cancelled(report)

    quantized, weight_count = quantize_weights(model, per_channel=config.per_channel, on_layer=on_layer)
    granularity = "per-channel" if config.per_channel else "per-tensor"
    report.log(f"stored {weight_count:,} Linear weights as int8")
    return RecipeResult(
        model=quantized,
        backend=f"weight-only int8 ({granularity}), dequantized at run time",
        notes=[
            "torch.export model: weights are stored as int8 and turned back into float at every "
            "call, so the file shrinks but latency does not improve and can grow",
        ],
    )


def _private_copy(model: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(model, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu").eval()


def _stop_if_cancelled(report: Reporter) -> None:
    if report.cancelled():
        raise Cancelled()
