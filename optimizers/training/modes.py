"""What the fine-tuning loop can train, and switching a model between training and inference behaviour.

Eager modules switch with `.train()` / `.eval()`. A graph module from torch.export (`ExportedProgram.module()`)
refuses both (torch 2.13: "Calling train() is not supported yet"), and its graph holds the mode as constant
arguments of the batch-norm and dropout calls; torch's own switch for them (`move_exported_model_to_train`)
moved to torchao with pt2e, so this module flips those arguments itself. TorchScript is refused: see `trainable`.
"""
from typing import Any

import torch
from torch import fx, nn

# Ops of an exported graph whose behaviour depends on the mode, and the index of their mode argument.
_DROPOUTS = {
    torch.ops.aten.dropout.default: 2,
    torch.ops.aten.feature_dropout.default: 2,
    torch.ops.aten.alpha_dropout.default: 2,
    torch.ops.aten.feature_alpha_dropout.default: 2,
    torch.ops.aten.native_dropout.default: 2,
}
# (input, weight, bias, running_mean, running_var, training | use_input_stats, ...): without running
# statistics (argument 3 is None) the batch's own statistics are the only ones, in both modes.
_NORMS = {torch.ops.aten.batch_norm.default: 5, torch.ops.aten.instance_norm.default: 5}
# What a decomposed (core ATen) graph has instead: inference-only batch norm, with no training form to switch to.
_FROZEN_NORMS = (torch.ops.aten._native_batch_norm_legit_no_training.default,)


def trainable(model: Any) -> tuple[bool, str]:
    """(True, "") when `fit` can fine-tune `model`, else (False, why) in words for the user."""
    if isinstance(model, torch.jit.ScriptModule):
        if not any(True for _ in model.parameters()):
            return False, ("a frozen TorchScript model cannot be fine-tuned: its weights are constants inside the "
                           "graph; upload the weights as safetensors (with the architecture) or a torch.export .pt2")
        return False, ("a TorchScript model cannot be fine-tuned reliably: a traced model keeps the dropout and "
                       "batch-norm mode it was traced in, and its copies do not receive gradients; upload the weights "
                       "as safetensors (with the architecture) or a torch.export .pt2")
    if not isinstance(model, nn.Module):
        return False, (f"a {type(model).__name__} cannot be trained here "
                       "(ONNX models run in onnxruntime, inference only)")
    if not any(parameter.is_floating_point() for parameter in model.parameters()):
        return False, "the model has no floating-point parameters to train (quantized or parameter-free)"
    return True, ""


def prepare_parameters(model: nn.Module) -> None:
    """Make the float parameters trainable when none is (a loaded program can arrive with gradients off).

    A model where some parameters train and some do not was frozen in part on purpose: it is left as it is.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.is_floating_point()]
    if not any(parameter.requires_grad for parameter in parameters):
        for parameter in parameters:
            parameter.requires_grad_(True)


def set_training(model: nn.Module, training: bool) -> None:
    """Dropout on and batch norm learning its statistics (True), or inference behaviour (False)."""
    if not isinstance(model, fx.GraphModule):
        model.train(training)
        return
    nn.Module.train(model, training)  # the flag only: an exported module's own train() raises
    changed = False
    for node in model.graph.nodes:
        index = _mode_argument(node)
        if index is None:
            continue
        has_statistics = node.target in _DROPOUTS or node.args[3] is not None
        wanted = training or not has_statistics
        if node.args[index] != wanted:
            node.args = node.args[:index] + (wanted,) + node.args[index + 1:]
            changed = True
    if changed:
        model.recompile()


def mode_notes(model: nn.Module) -> list[str]:
    """What will not behave as in training mode, in words (empty for eager modules)."""
    if not isinstance(model, fx.GraphModule):
        return []
    if any(node.op == "call_function" and node.target in _FROZEN_NORMS for node in model.graph.nodes):
        return ["the exported graph has inference-only batch norm (decomposed): its statistics stay as they were "
                "while the weights are fine-tuned"]
    return []


def fixed_batch(model: nn.Module) -> int | None:
    """The only batch size an exported graph accepts, when it was exported with a fixed one; else None."""
    if not isinstance(model, fx.GraphModule):
        return None
    for node in model.graph.nodes:
        if node.op == "placeholder":
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) > 0 and isinstance(shape[0], int):
                return shape[0]
            return None
    return None


def _mode_argument(node: fx.Node) -> int | None:
    if node.op != "call_function":
        return None
    index = _DROPOUTS.get(node.target, _NORMS.get(node.target))
    if index is None or len(node.args) <= index or not isinstance(node.args[index], bool):
        return None
    return index
