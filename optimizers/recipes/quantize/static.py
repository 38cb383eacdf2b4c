"""static_int8: int8 weights and activations, activation ranges calibrated on the dataset (x86 qconfig).

Eager modules go through torch.ao's FX graph mode (`prepare_fx` / `convert_fx`): convolutions, batch norm
and ReLU are fused, weights are per-channel, and the result is traced to TorchScript, the one format that
keeps packed int8 weights. TorchScript uploads go through `quantize_jit`, the same quantization done on the
TorchScript graph. torch.export graphs are FX graphs of aten ops, which FX graph mode does not match; their
linear and convolution calls are turned back into `torch.nn.functional` calls first (`quantize_export_fx`).
"""
import copy
import warnings

import torch
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping, default_weight_observer, get_default_qconfig_mapping
from torch.ao.quantization.observer import HistogramObserver
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.ao.quantization.quantize_jit import quantize_jit

from optimizers.errors import RecipeError, first_line
from optimizers.recipes.quantize.dynamic import jit_qconfig_dict, private_copy, script_layers, trace
from optimizers.recipes.quantize.inputs import run_batches
from optimizers.recipes.quantize.quantizer import Quantizer, kept, layer_parameters

ENGINE = "x86"
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_FUNCTIONS = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)
# Per-tensor weights, otherwise the x86 default (HistogramObserver with reduce_range for activations).
PER_TENSOR = QConfig(activation=HistogramObserver.with_args(reduce_range=True), weight=default_weight_observer)


def qconfig_mapping(per_channel: bool, linear_only: bool) -> QConfigMapping:
    mapping = get_default_qconfig_mapping(ENGINE)
    if not per_channel:
        mapping.set_global(PER_TENSOR)
    if linear_only:
        for conv in (*_CONVS, *_CONV_FUNCTIONS):
            mapping.set_object_type(conv, None)
    return mapping


class StaticQuantizer(Quantizer):
    """Shared by the static routes: they need calibration batches and say how many samples they saw."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        seen = sum(len(batch) for batch in self.calibration)
        self.notes = [f"weights and activations are int8; activation ranges were calibrated on {seen} training "
                      f"sample(s)"]

    def calibrate(self, prepared) -> None:
        with torch.no_grad():
            run_batches(prepared, self.calibration, self.example, on_batch=lambda: self.stop_if_cancelled())


class FxStatic(StaticQuantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"torch.ao FX graph mode static int8 ({ENGINE}), {self.granularity}, saved as TorchScript"
        self.notes.append("packed int8 weights fit no float state dict, so the result is TorchScript")

    def _types(self) -> tuple[type, ...]:
        return (nn.Linear,) if self.config.layers == "linear" else (nn.Linear, *_CONVS)

    def layers(self) -> list[str]:
        return [name for name, module in self.model.named_modules() if type(module) in self._types()]

    def layer_weights(self, layer: str) -> int:
        return layer_parameters(self.model, layer)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> nn.Module:
        mapping = qconfig_mapping(self.config.per_channel, self.config.layers == "linear")
        # By name as well as by type: a convolution fused with its batch norm and ReLU is no longer an nn.Conv2d.
        left_float = set(keep_float) | {name for name, module in self.model.named_modules()
                                        if type(module) in _CONVS and self.config.layers == "linear"}
        for name in left_float:
            mapping.set_module_name(name, None)
        return self._prepare_calibrate_convert(copy.deepcopy(self.model).eval(), mapping)

    def _prepare_calibrate_convert(self, model: nn.Module, mapping: QConfigMapping) -> nn.Module:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notices, once per call
                prepared = prepare_fx(model, mapping, (self.example,))
        except Exception as error:  # noqa: BLE001 - symbolic tracing fails in many ways on Python control flow
            raise RecipeError(f"FX graph mode cannot trace this model ({first_line(error)}); dynamic_int8 "
                              "does not need to trace it") from error
        self.calibrate(prepared)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert_fx(prepared).eval()

    def finish(self, quantized: nn.Module) -> torch.jit.ScriptModule:
        return trace(quantized, self.example)


class JitStatic(StaticQuantizer):
    _LAYER_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"torch.ao quantize_jit static int8 ({ENGINE}), {self.granularity}"
        self.notes.append("the model was frozen: parameters became constants, so it can no longer be trained")

    def layers(self) -> list[str]:
        types = ("Linear",) if self.config.layers == "linear" else self._LAYER_TYPES
        return script_layers(self.model, types)

    def layer_weights(self, layer: str) -> int:
        return layer_parameters(self.model, layer)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> torch.jit.ScriptModule:
        qconfig = qconfig_mapping(self.config.per_channel, False).global_qconfig
        if self.config.layers == "linear":
            qconfigs = {name: qconfig for name in kept(self.layers(), keep_float)}
        else:
            qconfigs = jit_qconfig_dict(qconfig, keep_float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return quantize_jit(private_copy(self.model), qconfigs, lambda model, _: self.calibrate(model), [None])
