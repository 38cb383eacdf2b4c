"""Write one model in one format, or say why it cannot be: the pieces `save_all.save_all_formats` uses.

Each writer takes the model, the path to write and the example input, and returns notes for the
user. `CannotWrite` carries a short reason when a combination is impossible by nature (a
TorchScript module has no torch.export path); any other exception is a failure of the exporter.
"""

import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.export import Dim, ExportedProgram

from optimizers.errors import first_line
from optimizers.formats.export_program import export_program
from optimizers.shapes import format_shape


class CannotWrite(Exception):
    """This model cannot take this format; str(error) is the short reason shown to the user."""


def is_onnx_model(model: Any) -> bool:
    return getattr(model, "onnx_path", None) is not None


def is_torchscript(model: Any) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def is_jit_quantized(model: Any) -> bool:
    if not is_torchscript(model):
        return False
    return any(node.kind().startswith("quantized::") for node in model.inlined_graph.nodes())


# aten's weight-only kernels (the weight_only_int8 / int4 quantize variants) have no ONNX form either; they sit
# inside the scripted layers' branches, so every block is searched.
_WEIGHT_ONLY_KERNELS = frozenset({"aten::_weight_int8pack_mm", "aten::_weight_int4pack_mm_for_cpu"})


def uses_weight_only_kernels(model: Any) -> bool:
    if not is_torchscript(model):
        return False
    graph = model.inlined_graph  # held: its blocks are invalid once the graph is freed
    return any(kind in _WEIGHT_ONLY_KERNELS for kind in _kinds(graph.block()))


def _kinds(block: Any) -> Any:
    for node in block.nodes():
        yield node.kind()
        for inner in node.blocks():
            yield from _kinds(inner)


def write_torchscript(model: Any, path: Path, example: torch.Tensor, program: "ProgramCache") -> list[str]:
    if is_onnx_model(model):
        raise CannotWrite("an ONNX model cannot be converted back to TorchScript")
    if is_torchscript(model):
        torch.jit.save(model, str(path))
        return []
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(traced, str(path))
    if isinstance(model, fx.GraphModule):
        return []  # a graph has no Python control flow; its warnings are about its input guards
    note = (f"model.pt was traced with an input of shape {format_shape(example.shape)}: Python control flow in "
            "the model is fixed to the path that input took")
    tracer = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    return [note + (f" (the tracer warned: {tracer[0]})" if tracer else "")]


def write_export(model: Any, path: Path, example: torch.Tensor, program: "ProgramCache") -> list[str]:
    if is_onnx_model(model):
        raise CannotWrite("an ONNX model cannot be converted back to a torch.export program")
    if is_torchscript(model):
        raise CannotWrite("torch.export cannot take a TorchScript module")
    exported, notes = program.get()
    torch.export.save(exported, str(path))
    return notes


def write_onnx(model: Any, path: Path, example: torch.Tensor, program: "ProgramCache") -> list[str]:
    if is_onnx_model(model):
        shutil.copyfile(model.onnx_path, path)
        return []
    if example.dtype == torch.bfloat16:
        raise CannotWrite("ONNX is not written for bfloat16 inputs: onnxruntime's Python API takes no bfloat16")
    if is_jit_quantized(model):
        raise CannotWrite("a TorchScript-quantized module cannot be exported to ONNX (its quantized:: operators "
                          "have no ONNX form)")
    if uses_weight_only_kernels(model):
        raise CannotWrite("a weight-only int8 / int4 TorchScript module cannot be exported to ONNX (aten's "
                          "weight-only kernels have no ONNX form)")
    if is_torchscript(model):
        # Only the TorchScript-based exporter reads ScriptModules; it is deprecated but still works in 2.13.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example,), str(path), dynamo=False, external_data=False, verbose=False)
        return [f"model.onnx takes inputs of shape {format_shape(example.shape)} only (exported from TorchScript)"]
    exported, notes = program.get()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        torch.onnx.export(exported, (example,), str(path), dynamo=True, external_data=False, verbose=False)
    return notes


def write_safetensors(model: Any, path: Path, example: torch.Tensor, program: "ProgramCache") -> list[str]:
    if is_onnx_model(model):
        raise CannotWrite("an ONNX model cannot be converted back to a PyTorch state dict")
    from optimizers.formats.statedict import save_safetensors

    try:
        save_safetensors(model, path)
    except ValueError as error:  # state that is not plain tensors (packed int8 weights, say)
        raise CannotWrite(first_line(error).removeprefix("cannot save as safetensors: ")) from error
    return []


def write_hf(model: Any, path: Path, example: torch.Tensor, program: "ProgramCache") -> list[str]:
    from optimizers.formats.hf_folder import TokenIdsModel, write_hf_zip

    if not isinstance(model, TokenIdsModel):
        raise CannotWrite("a Hugging Face folder is written for models transformers built (uploaded as one) and "
                          "still in that form")
    write_hf_zip(model, path)
    return ["model.zip is a Hugging Face folder: unzip it and load it with from_pretrained, or upload it again"]


class ProgramCache:
    """The model's ExportedProgram, made once and shared by the .pt2 and ONNX writers."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        self.model, self.example = model, example
        self._result: tuple[ExportedProgram, list[str]] | None = None

    def get(self) -> tuple[ExportedProgram, list[str]]:
        if self._result is None:
            if isinstance(self.model, fx.GraphModule):
                self._result = export_program(self.model, self.example)  # keeps the dims it was exported with
            else:
                self._result = _export_with_any_batch(self.model, self.example)
        return self._result


def _export_with_any_batch(module: nn.Module, example: torch.Tensor) -> tuple[ExportedProgram, list[str]]:
    """Export with a dynamic first (batch) dimension where the model allows it, else with fixed shapes."""
    if example.dim() >= 1:
        # torch.export pins a dimension whose example size is 1; two copies of the row keep it symbolic.
        widened = example if example.shape[0] > 1 else torch.cat([example, example])
        try:
            return torch.export.export(module, (widened,), dynamic_shapes=({0: Dim("batch", min=1)},)), []
        except Exception as error:  # noqa: BLE001 - the model fixes its batch: export it as it is
            reason = first_line(error)
    else:
        reason = "its input has no batch dimension"
    note = (f"model.pt2 and model.onnx take inputs of shape {format_shape(example.shape)} only: "
            f"the batch size could not be left free ({reason})")
    return torch.export.export(module, (example,)), [note]
