"""The quantize recipe: pick the route for the variant and the model's kind, run it, keep the accuracy budget.

Which implementation runs which variant is the table in `optimizers.configs.quantize_routes` (shared with the web);
each implementation lives in its own module of this package behind the `Quantizer` shape,
so the accuracy budget (`sensitivity`) can drive any of them layer by layer.
"""
import importlib
from collections.abc import Callable
from typing import Any

import torch

from optimizers.configs import QuantizeConfig
from optimizers.configs.quantize_routes import Route, lookup, refusal, variant_options
from optimizers.errors import Cancelled, RecipeError
from optimizers.recipes.quantize.applies import nothing_to_quantize, quantize_applies
from optimizers.recipes.quantize.budget import run_with_budget
from optimizers.recipes.quantize.cast import CastQuantizer
from optimizers.recipes.quantize.dynamic import EagerDynamic, ExportWeightOnly, JitDynamic
from optimizers.recipes.quantize.export_fx import ExportFxStatic
from optimizers.recipes.quantize.inputs import calibration_batches, example_or_guess, model_kind
from optimizers.recipes.quantize.quantizer import Quantizer
from optimizers.recipes.quantize.static import FxStatic, JitStatic
from optimizers.recipes.quantize.torchao_routes import TorchaoQuantizer
from optimizers.registry import RecipeResult, register
from optimizers.reporters import Reporter

__all__ = ["quantize", "quantize_applies"]



def _lazy_route(module: str, name: str) -> Callable[..., Quantizer]:
    """onnx and onnxruntime take most of a second to import: only the jobs that use a route import its module."""
    def make(*args, **kwargs) -> Quantizer:
        return getattr(importlib.import_module(f"optimizers.recipes.quantize.{module}"), name)(*args, **kwargs)
    return make


def _onnx_route(name: str) -> Callable[..., Quantizer]:
    return _lazy_route("onnx_routes", name)


# Route name (optimizers.configs.quantize_routes) -> implementation.
QUANTIZERS: dict[str, Callable[..., Quantizer]] = {
    "eager_dynamic": EagerDynamic,
    "jit_dynamic": JitDynamic,
    "export_weight_only": ExportWeightOnly,
    "fx_static": FxStatic,
    "jit_static": JitStatic,
    "export_fx_static": ExportFxStatic,
    "cast_fp16": CastQuantizer,
    "cast_bf16": CastQuantizer,
    "onnx_dynamic": _onnx_route("OnnxDynamic"),
    "onnx_static": _onnx_route("OnnxStatic"),
    "onnx_fp16": _onnx_route("OnnxFloat16"),
    "weight_only_int8_cuda": TorchaoQuantizer,
    "weight_only_int4_cuda": TorchaoQuantizer,
    "fp8_cuda": TorchaoQuantizer,
    "transformers_onnx_dynamic": _lazy_route("transformers_onnx", "TransformersOnnxDynamic"),
    "weight_only_int8": _lazy_route("weight_only", "WeightOnlyQuantizer"),
    "weight_only_int4": _lazy_route("weight_only", "WeightOnlyQuantizer"),
}
_WHOLE_MODEL = ("cast_fp16", "cast_bf16", "onnx_fp16")  # routes that convert the model as one piece


def variant_applicability(model: Any) -> dict[str, dict[str, Any]]:
    """Which variants apply to this kind of model (a dataset, when a variant needs one, is checked at submit)."""
    return {option["variant"]: {"applicable": option["applicable"], "reason": option["reason"]}
            for option in variant_options(model_kind(model), has_dataset=True)}


@register("quantize", QuantizeConfig, applies_to=quantize_applies, variants=variant_applicability)
def quantize(model: Any, data: Any, config: QuantizeConfig, report: Reporter, *,
             example: torch.Tensor | None = None) -> RecipeResult:
    """A quantized copy of `model` (never modified). `data`: the dataset's splits, for calibration and the
    budget; `example`: the job's example input (exported and ONNX models declare one when it is missing)."""
    report.stage("quantize")
    applicable, reason = quantize_applies(model)
    if not applicable:
        raise RecipeError(f"nothing to quantize: {reason}")
    route = _route(config.variant, model, data)
    _stop_if_cancelled(report)
    quantizer = build_quantizer(route, model, config, data, report, example)
    if route.name not in _WHOLE_MODEL and not quantizer.layers():
        raise RecipeError(nothing_to_quantize(config.variant, model))
    _stop_if_cancelled(report)
    if config.has_budget:
        quantized, notes, extras = run_with_budget(quantizer, model, data, config, report)  # already finished
    else:
        report.progress(0, 1, "quantize")
        quantized, notes, extras = quantizer.finish(quantizer.quantize()), [], {}
        report.progress(1, 1, "quantize")
    extras = {"variant": config.variant, "route": route.name, "device": route.device, **extras}
    return RecipeResult(model=quantized, backend=quantizer.backend,
                        notes=quantizer.notes + notes, primary_format=quantizer.primary_format, extras=extras)


def _route(variant: str, model: Any, data: Any) -> Route:
    kind = model_kind(model)
    reason = refusal(variant, kind, has_dataset=data is not None)
    if reason:
        raise RecipeError(f"{variant} does not apply to this {kind} model: {reason}")
    return lookup(variant, kind)


def build_quantizer(route: Route, model: Any, config: QuantizeConfig, data: Any, report: Reporter,
                    example: torch.Tensor | None) -> Quantizer:
    """The route's implementation for this model, with calibration batches when the route needs them."""
    example = example_or_guess(model, example, required=route.needs_dataset or config.has_budget)
    calibration = calibration_batches(data, example, config.calibration_samples) if route.needs_dataset else None
    return QUANTIZERS[route.name](model, config, route, report, example=example, calibration=calibration)


def _stop_if_cancelled(report: Reporter) -> None:
    if report.cancelled():
        raise Cancelled()
