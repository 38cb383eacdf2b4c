"""The shape every quantize route takes, so the recipe and the accuracy budget can drive any of them.

A route is built for one model and one config (and, for static variants, calibration batches). It names
the layers it would quantize, and quantizes all of them except those asked to stay float: the budget in
`optimizers.recipes.quantize.sensitivity` quantizes one layer at a time to measure sensitivity, then all but the most
sensitive. A route never modifies the model it was given.
"""
from typing import Any

import torch

from optimizers.configs import QuantizeConfig
from optimizers.configs.quantize_routes import Route
from optimizers.errors import Cancelled
from optimizers.reporters import Reporter


class Quantizer:
    """Base of the routes; subclasses set `backend` / `notes` and implement `layers` and `quantize`."""

    def __init__(self, model: Any, config: QuantizeConfig, route: Route, report: Reporter, *,
                 example: torch.Tensor, calibration: list[torch.Tensor] | None = None) -> None:
        self.model, self.config, self.route, self.report = model, config, route, report
        self.example = example  # the model's example input: shapes, and tracing of the result
        self.calibration = calibration or []  # batches of training samples fitted to the input (static routes)
        self.backend = route.backend
        self.notes: list[str] = []

    @property
    def granularity(self) -> str:
        return "per-channel" if self.config.per_channel else "per-tensor"

    @property
    def primary_format(self) -> str | None:
        return self.route.saves_as

    def layers(self) -> list[str]:
        """Names of the layers this route quantizes, in model order: the units the budget can keep float."""
        raise NotImplementedError

    def layer_weights(self, layer: str) -> int:
        """Weight values stored by `layer` (what keeping it float costs); 0 when unknown."""
        return 0

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> Any:
        """A quantized copy of the model with every layer but those in `keep_float` quantized."""
        raise NotImplementedError

    def finish(self, quantized: Any) -> Any:
        """The form the chosen result is saved and measured in (a converted FX module becomes TorchScript)."""
        return quantized

    def stop_if_cancelled(self) -> None:
        if self.report.cancelled():
            raise Cancelled()


def layer_parameters(model: Any, layer: str) -> int:
    """Parameter values of submodule `layer` (dotted path); works on TorchScript, which has no get_submodule."""
    module = model
    for part in layer.split(".") if layer else []:
        module = getattr(module, part)
    return sum(parameter.numel() for parameter in module.parameters())


def kept(layers: list[str], keep_float: frozenset[str]) -> list[str]:
    """The layers to quantize: `layers` without those kept float, order kept."""
    return [layer for layer in layers if layer not in keep_float]
