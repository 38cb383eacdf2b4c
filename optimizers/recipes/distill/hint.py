"""The optional feature (hint) loss: the student's features, through a learned projection, match the teacher's.

FitNets (Romero et al.) guide a thin student by an intermediate layer of the teacher as well as by its outputs.
Here the layer is the one whose shape can always be matched: the features each model hands its last Linear layer
(the classifier's input), so a Linear projection maps the student's width onto the teacher's. The projection trains
with the student and is dropped afterwards: the saved student is the architecture it was, nothing added.

It needs to see inside both models, so the teacher must be a module built in Python (a state dict with its
architecture, or any eager module); a TorchScript, exported or ONNX teacher hides its layers.
"""
import functools
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from optimizers.errors import RecipeError
from optimizers.training.loop import LossFn


def last_linear(model: Any, who: str) -> nn.Linear:
    """The model's last Linear layer (in registration order: the classifier of every built-in architecture)."""
    if not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule | torch.fx.GraphModule):
        raise RecipeError(f"the hint loss needs the {who}'s layers, which a {type(model).__name__} hides: upload the "
                          f"{who} as a state dict (safetensors) with its architecture, or set hint_weight to 0")
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise RecipeError(f"the hint loss matches the features the {who} hands its last Linear layer, and the {who} "
                          "has none; set hint_weight to 0")
    return linears[-1]


class FeatureCatcher:
    """Keeps the input of a layer from the latest forward pass (a forward pre-hook on it)."""

    def __init__(self, layer: nn.Linear) -> None:
        self.feature: torch.Tensor | None = None
        layer.register_forward_pre_hook(self._catch)

    def _catch(self, module: nn.Module, args: tuple) -> None:
        self.feature = args[0]


class HintedStudent(nn.Module):
    """The student and a projection of its features onto the teacher's width, trained together."""

    def __init__(self, student: nn.Module, teacher_width: int) -> None:
        super().__init__()
        layer = last_linear(student, "student")
        self.student = student
        self.projection = nn.Linear(layer.in_features, teacher_width)
        self.catcher = FeatureCatcher(layer)

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.student(inputs)


def hinted_loss(base: LossFn, teacher_features: FeatureCatcher, weight: float) -> LossFn:
    """base (which runs the student and the teacher) + weight x MSE(projected student features, teacher features).
    A partial, not a closure: spawned replicas receive it through pickle."""
    return functools.partial(_hinted_loss, base, teacher_features, weight)


def _hinted_loss(base: LossFn, teacher_features: FeatureCatcher, weight: float, model: nn.Module,
                 inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    value = base(model, inputs, labels)
    hinted = model.module if isinstance(model, DistributedDataParallel) else model
    # The teacher ran in inference mode: a clone made outside it can be saved for the student's backward pass.
    target = teacher_features.feature.detach().clone().float().flatten(1)
    projected = hinted.projection(hinted.catcher.feature.flatten(1))
    return value + weight * F.mse_loss(projected, target)
