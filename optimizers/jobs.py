"""The two things a worker asks of a model file: inspect it, and run a recipe on it.

Called by the sandbox child with a `JobSpec` and a `Reporter`; returns a JSON-ready dict.
Every model call goes through `measure.run_model`, and before/after figures come from the
same example input, thread count and measurement code, so they can be compared.
"""

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers import measure
from optimizers.configs import parse_config
from optimizers.errors import ModelInputError, first_line
from optimizers.formats import extension, load_model, save_model
from optimizers.job_spec import JobSpec
from optimizers.registry import applicability, get_recipe
from optimizers.reporting import JobSteps, Reporter
from optimizers.shapes import format_shape

REPORT_NAME = "report.json"
MODEL_NAME = "model"  # fixed: user-supplied names never reach the file system
_DTYPES = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int64": torch.int64,
}


def make_example(shape: tuple[int, ...], dtype_name: str) -> torch.Tensor:
    """A repeatable example input: seeded normal noise for floats, zeros for integer ids."""
    dtype = _DTYPES[dtype_name]
    if not dtype.is_floating_point:
        # Zeros are a valid token id / class index for any embedding, random ints are not.
        return torch.zeros(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=generator).to(dtype)


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def call_with_example(model: nn.Module, example: torch.Tensor, dtype_name: str) -> Any:
    """Run the model once; a failure is the user's input description not fitting the model."""
    try:
        return measure.run_model(model, example)
    except Exception as error:  # noqa: BLE001 - whatever torch raises, the input did not fit
        if _out_of_memory(error):
            raise ModelInputError(
                f"the model ran out of memory on an input of shape {format_shape(example.shape)} "
                f"({dtype_name}): {first_line(error)}"
            ) from error
        raise ModelInputError(
            f"the model rejected an input of shape {format_shape(example.shape)} ({dtype_name}): "
            f"{first_line(error)}"
        ) from error


def inspect_model(spec: JobSpec, report: Reporter) -> dict[str, Any]:
    steps = JobSteps(report, ["load", "check input", "measure"])
    steps.begin("load")
    model, fmt = load_model(spec.model_path)
    steps.begin("check input")
    example = make_example(spec.input_shape, spec.input_dtype)
    output = call_with_example(model, example, spec.input_dtype)
    steps.begin("measure")
    latency = measure.latency_ms(model, example)
    result = {
        "format": fmt,
        "params": measure.count_parameters(model),
        "size_bytes": measure.file_size(spec.model_path),
        "input_shape": list(spec.input_shape),
        "input_dtype": spec.input_dtype,
        **describe_output(output),
        "latency_ms_p50": latency["p50"],
        "latency_ms_p95": latency["p95"],
        "threads": latency["threads"],
        "recipes": applicability(model),
    }
    steps.finish()
    return result


def describe_output(output: Any) -> dict[str, Any]:
    """Shape and dtype of the output, or of its first tensor when it returns a container."""
    tensors = list(measure.output_tensors(output))
    if not tensors:
        return {"output_shape": None, "output_dtype": None,
                "output_note": f"the model returns a {type(output).__name__} without tensors"}
    note = None
    if not isinstance(output, torch.Tensor):
        note = (f"the model returns a {type(output).__name__} of {len(tensors)} tensor(s); "
                "output_shape describes the first")
    first = tensors[0]
    return {"output_shape": list(first.shape), "output_dtype": str(first.dtype).removeprefix("torch."),
            "output_note": note}


def run_recipe(spec: JobSpec, report: Reporter) -> dict[str, Any]:
    config = parse_config(spec.recipe, spec.config)  # before loading: bad settings fail fast
    recipe = get_recipe(spec.recipe)
    steps = JobSteps(report, ["load", "measure original", spec.recipe, "save", "measure optimized"])
    steps.begin("load")
    model, fmt = load_model(spec.model_path)
    example = make_example(spec.input_shape, spec.input_dtype)
    reference = call_with_example(model, example, spec.input_dtype)

    steps.begin("measure original")
    before = _measurements(model, example, spec.model_path)

    outcome = recipe.run(model, None, config, steps.begin(spec.recipe))

    steps.begin("save")
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_name = MODEL_NAME + extension(fmt)
    partial = out_dir / f".partial-{model_name}"  # keeps the extension torch.export.save expects
    save_notes = save_model(outcome.model, partial, fmt, example)
    os.replace(partial, out_dir / model_name)  # a reader never sees half a model

    steps.begin("measure optimized")
    optimized, _ = load_model(out_dir / model_name)  # measure what was saved, not what is in memory
    after = _measurements(optimized, example, out_dir / model_name)
    optimized_output = measure.run_model(optimized, example)
    result = {
        "recipe": spec.recipe,
        "config": config.to_dict(),
        "format": fmt,
        "backend": outcome.backend,
        "input_shape": list(spec.input_shape),
        "input_dtype": spec.input_dtype,
        "before": before,
        "after": after,
        "ratios": {"size": _ratio(after["size_bytes"], before["size_bytes"]),
                   "latency_p50": _ratio(after["latency_ms_p50"], before["latency_ms_p50"])},
        "max_abs_diff": _finite_or_none(measure.max_abs_diff(reference, optimized_output)),
        "reference_max_abs": _finite_or_none(measure.max_abs(reference)),
        "threads": torch.get_num_threads(),
        "notes": outcome.notes + save_notes,
    }
    _write_json_atomically(out_dir / REPORT_NAME, result)
    steps.finish()
    return {**result, "artifacts": [model_name, REPORT_NAME]}


def _measurements(model: nn.Module, example: torch.Tensor, path: str | os.PathLike) -> dict[str, Any]:
    latency = measure.latency_ms(model, example)
    return {"size_bytes": measure.file_size(path), "params": measure.count_parameters(model),
            "latency_ms_p50": latency["p50"], "latency_ms_p95": latency["p95"]}


def _ratio(after: float, before: float) -> float | None:
    """after / before: below 1 means smaller or faster."""
    return round(after / before, 4) if before else None


def _finite_or_none(value: float) -> float | None:
    # A NaN in the outputs must not make the whole report unwritable as JSON.
    return value if math.isfinite(value) else None


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
