"""What the quantize routes feed a model: calibration batches, evaluation inputs, and the model's kind.

Calibration comes from the dataset's train split and the accuracy budget is judged on its validation
split, both fitted to the model's input with `optimizers.data.splits.fit_to_input`, so calibration and
judgement never see the same samples. Without a dataset the budget falls back to the example input.
"""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from optimizers.errors import RecipeError, first_line
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.measure.inference import output_tensors, run_model

CALIBRATION_BATCH = 64
EVAL_BATCH = 256


def model_kind(model: Any) -> str:
    """"eager", "torchscript", "export" (a torch.export graph module), "onnx" or "transformers" (a Hugging Face
    folder's model): the kinds of `quantize_routes`."""
    if getattr(model, "onnx_path", None) is not None:
        return "onnx"
    if isinstance(model, TokenIdsModel):
        return "transformers"
    if isinstance(model, torch.jit.ScriptModule):
        return "torchscript"
    if isinstance(model, fx.GraphModule):
        return "export"
    return "eager"


def example_or_guess(model: Any, example: torch.Tensor | None, *, required: bool) -> torch.Tensor | None:
    """The job's example input; without one, what an exported or ONNX model declares (batch 1), else None.

    `required`: raise instead of returning None (calibration and the budget must run the model).
    """
    if example is not None:
        return example
    shape, dtype = _declared_input(model)
    if shape is None:
        if required:
            raise RecipeError("this variant needs the model's example input to run the model, and none was given")
        return None
    return torch.zeros(shape, dtype=dtype) if not dtype.is_floating_point else torch.randn(shape).to(dtype)


def _declared_input(model: Any) -> tuple[tuple[int, ...] | None, torch.dtype]:
    if model_kind(model) == "onnx":
        spec = model.input_specs()[0]
        shape = tuple(size if isinstance(size, int) else 1 for size in spec["shape"])
        return shape, torch.int64 if "int64" in spec["type"] else torch.float32
    if model_kind(model) == "export":
        for node in model.graph.nodes:
            value = node.meta.get("val") if node.op == "placeholder" else None
            if isinstance(value, torch.Tensor):
                shape = tuple(size if isinstance(size, int) else 1 for size in value.shape)
                return shape, value.dtype
    return None, torch.float32


@dataclass
class EvalSet:
    inputs: torch.Tensor
    source: str  # "validation split" or "example input": said in the report


def calibration_batches(data: Any, example: torch.Tensor, samples: int) -> list[torch.Tensor]:
    """Up to `samples` training samples, fitted to the model's input, in batches of CALIBRATION_BATCH."""
    if data is None or getattr(data, "train_x", None) is None or len(data.train_x) == 0:
        raise RecipeError("static quantization needs a dataset: activation ranges are calibrated on its "
                          "training samples")
    raw = data.train_x[:samples]
    return [_fit(raw[start:start + CALIBRATION_BATCH], example, "calibrate on")
            for start in range(0, len(raw), CALIBRATION_BATCH)]


def evaluation_set(data: Any, example: torch.Tensor, samples: int) -> EvalSet:
    """Up to `samples` validation samples fitted to the model's input, or the example input without them."""
    if data is None or getattr(data, "val_x", None) is None or len(data.val_x) == 0:
        return EvalSet(example, "example input")
    try:
        return EvalSet(_fit(data.val_x[:samples], example, "evaluate on"), "validation split")
    except RecipeError:
        return EvalSet(example, "example input (the dataset does not fit the model's input)")


def _fit(raw: torch.Tensor, example: torch.Tensor, purpose: str) -> torch.Tensor:
    from optimizers.data.splits import fit_to_input  # numpy and the dataset code only for jobs with data

    dtype = str(example.dtype).removeprefix("torch.")
    try:
        return fit_to_input(raw, tuple(example.shape), dtype)
    except ValueError as error:
        raise RecipeError(f"cannot {purpose} the dataset: {first_line(error)}") from error


def run_batches(model: Any, batches: list[torch.Tensor], example: torch.Tensor,
                on_batch: Callable[[], None] = lambda: None) -> list[Any]:
    """Run every batch through the model and return the outputs.

    A model whose batch size is fixed (an exported graph with a static batch, say) gets each batch cut to
    the example's batch size instead: the first failure switches, later failures are real.
    """
    outputs, fixed = [], False
    for batch in batches:
        if not fixed:
            try:
                outputs.append(run_model(model, batch))
                on_batch()
                continue
            except Exception:  # noqa: BLE001 - whatever torch raises for a shape the model refuses
                if outputs or len(batch) == len(example):
                    raise
                fixed = True
        for piece in _pieces(batch, len(example)):
            outputs.append(run_model(model, piece))
        on_batch()
    return outputs


def _pieces(batch: torch.Tensor, size: int) -> list[torch.Tensor]:
    """`batch` cut into pieces of exactly `size` rows; a short last piece is dropped (a static batch refuses it)."""
    return [batch[start:start + size] for start in range(0, len(batch) - size + 1, size)]


def rebatch(batches: list[torch.Tensor], size: int) -> list[torch.Tensor]:
    """The same samples in batches of exactly `size` (for graphs with a fixed batch); leftovers are dropped."""
    if not batches or all(len(batch) == size for batch in batches):
        return batches
    return _pieces(torch.cat(batches), size)


def first_output(model: Any, inputs: torch.Tensor, example: torch.Tensor) -> torch.Tensor:
    """The model's first output tensor for `inputs`, float32 on the CPU (what fidelity is judged on)."""
    chunks = []
    for output in run_batches(model, list(inputs.split(EVAL_BATCH)), example):
        tensors = list(output_tensors(output))
        if not tensors:
            raise RecipeError("the model returns no tensor, so its fidelity cannot be measured")
        chunks.append(tensors[0].detach().float().cpu())
    return torch.cat(chunks)
