"""dynamic_int8: int8 weights, activations quantized on the fly (or, for torch.export graphs, kept float).

Eager modules go through torch.ao's `quantize_dynamic` (Linear, LSTM, GRU) and are saved as TorchScript,
since packed int8 weights fit no float state dict. TorchScript uploads go through `quantize_dynamic_jit`
(Linear only: TorchScript's graph rewrite knows no recurrent layers). torch.export graphs get the weight-only
rewrite of `int8_weights` (this package): torch 2.13 ships no pt2e quantizer, so the file shrinks but compute
stays float.
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

from optimizers.recipes.quantize.int8_weights import linear_weight_targets, quantize_weights
from optimizers.recipes.quantize.quantizer import Quantizer, kept, layer_parameters

# Exact types: subclasses such as attention's NonDynamicallyQuantizableLinear must stay float.
_DYNAMIC_TYPES = (nn.Linear, nn.LSTM, nn.GRU)
_ON_THE_FLY = "weights are int8; activations are quantized on the fly at each call"


class EagerDynamic(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"torch.ao quantize_dynamic ({torch.backends.quantized.engine}), {self.granularity}, " \
                       "saved as TorchScript"
        self.notes = [f"{self._kinds()} {_ON_THE_FLY}",
                      "int8 packed weights do not fit the architecture's float state dict, so the result is "
                      "TorchScript"]

    def _kinds(self) -> str:
        present = dict.fromkeys(type(self.model.get_submodule(name)).__name__ for name in self.layers())
        return ", ".join(present) or "Linear"

    def _types(self) -> tuple[type, ...]:
        return (nn.Linear,) if self.config.layers == "linear" else _DYNAMIC_TYPES

    def layers(self) -> list[str]:
        return [name for name, module in self.model.named_modules() if type(module) in self._types()]

    def layer_weights(self, layer: str) -> int:
        return layer_parameters(self.model, layer)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> nn.Module:
        qconfig = per_channel_dynamic_qconfig if self.config.per_channel else default_dynamic_qconfig
        spec = {name: qconfig for name in kept(self.layers(), keep_float)}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return quantize_dynamic(self.model, spec, dtype=torch.qint8, inplace=False).eval()

    def finish(self, quantized: nn.Module) -> nn.Module:
        # TorchScript is what it is saved as; tracing here makes the page's reasons for the formats it cannot
        # take plain ("a TorchScript-quantized module cannot be exported to ONNX"), not exporter crashes.
        return quantized if self.example is None else trace(quantized, self.example)


class JitDynamic(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"torch.ao quantize_dynamic_jit ({torch.backends.quantized.engine}), {self.granularity}"
        self.notes = [f"Linear {_ON_THE_FLY}",
                      "the model was frozen: parameters became constants, so it can no longer be trained"]

    def layers(self) -> list[str]:
        return script_layers(self.model, ("Linear",))

    def layer_weights(self, layer: str) -> int:
        return layer_parameters(self.model, layer)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> torch.jit.ScriptModule:
        qconfig = per_channel_dynamic_qconfig if self.config.per_channel else default_dynamic_qconfig
        with warnings.catch_warnings():
            # torch.ao reads .grad of frozen non-leaf tensors internally; the warning is not ours to fix.
            warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
            return quantize_dynamic_jit(private_copy(self.model), jit_qconfig_dict(qconfig, keep_float))


class ExportWeightOnly(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"weight-only int8 ({self.granularity}), dequantized at run time"
        self.notes = ["torch.export model: weights are stored as int8 and turned back into float at every "
                      "call, so the file shrinks but latency does not improve and can grow"]

    def layers(self) -> list[str]:
        return [target.removesuffix(".weight") for target in linear_weight_targets(self.model)]

    def layer_weights(self, layer: str) -> int:
        return self._targets()[layer].numel()

    def _targets(self) -> dict[str, torch.Tensor]:
        return {target.removesuffix(".weight"): _attribute(self.model, target)
                for target in linear_weight_targets(self.model)}

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> fx.GraphModule:
        targets = {target.removesuffix(".weight"): target for target in linear_weight_targets(self.model)}
        skipped = frozenset(targets[layer] for layer in keep_float if layer in targets)

        def on_layer(done: int, total: int) -> None:
            self.report.progress(done, total, "quantize")
            self.stop_if_cancelled()

        quantized, count = quantize_weights(self.model, per_channel=self.config.per_channel, on_layer=on_layer,
                                            keep_float=skipped)
        self.report.log(f"stored {count:,} Linear weights as int8")
        return quantized


def trace(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript of a quantized eager or FX module: the one format that holds packed int8 weights."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, example, check_trace=False).eval()


def script_layers(model: torch.jit.ScriptModule, original_names: tuple[str, ...]) -> list[str]:
    """Submodules of a TorchScript model that were built as one of `original_names` (nn.Linear, say)."""
    return [name for name, module in model.named_modules() if name and module.original_name in original_names]


def jit_qconfig_dict(qconfig, keep_float: frozenset[str]) -> dict:
    """torch.ao's JIT qconfig dict: everything quantized, the named submodules left float."""
    return {"": qconfig, **{name: None for name in keep_float}}


def private_copy(model: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The JIT passes freeze and rewrite graphs: a copy guarantees the caller's module is untouched."""
    buffer = io.BytesIO()
    torch.jit.save(model, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu").eval()


def _attribute(module: nn.Module, target: str) -> torch.Tensor:
    owner, _, name = target.rpartition(".")
    return getattr(module.get_submodule(owner), name)
