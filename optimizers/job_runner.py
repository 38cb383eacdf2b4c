"""The two things a worker asks of a model file: inspect it, and run a recipe on it.

Called by the sandbox child with a `JobSpec` and a `Reporter`; returns a JSON-ready dict.
Every figure comes from `optimizers.measure.report.measure_model`, with the same example input,
evaluation data, thread count and reference outputs before and after, so they can be compared.
"""

import contextlib
import dataclasses
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import parse_config
from optimizers.errors import ModelInputError, RecipeError, first_line
from optimizers.formats.hf_folder import HF, TokenIdsModel
from optimizers.formats.hf_folder import describe as describe_hf
from optimizers.formats.model_io import FORMATS, TORCHSCRIPT, load_model
from optimizers.formats.save_all import LABELS, save_all_formats, size_in_format
from optimizers.job_spec import JobSpec
from optimizers.measure import inference as measure
from optimizers.measure.report import (
    EMBEDDINGS,
    LANGUAGE_MODEL,
    compare_reports,
    measure_model,
    pooled_reference,
    reference_outputs,
)
from optimizers.registry import applicability, get_recipe
from optimizers.reporters import JobSteps, Reporter
from optimizers.shapes import format_shape
from optimizers.training import hosts

REPORT_NAME = "report.json"
_VERSIONED = ("torch", "onnx", "onnxruntime", "torchao", "torch-pruning", "safetensors", "numpy")
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


def example_for(model: Any, shape: tuple[int, ...], dtype_name: str) -> torch.Tensor:
    """The job's example input: `make_example`'s, except that a transformers model gets token ids it attends to
    (zeros are an encoder's padding: a batch of nothing but padding is no example of its work)."""
    if isinstance(model, TokenIdsModel) and dtype_name == "int64":
        return model.example_ids(shape)
    return make_example(shape, dtype_name)


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
    model, fmt = load_model(spec.model_path, architecture=spec.architecture)
    steps.begin("check input")
    example = example_for(model, spec.input_shape, spec.input_dtype)
    output = call_with_example(model, example, spec.input_dtype)
    splits = _load_splits(spec, model)
    steps.begin("measure")
    figures = measure_model(model, example, spec.model_path, splits=splits, task=model_task(model))
    result = {
        "format": fmt,
        "params": figures["params"],
        "size_bytes": figures["size_bytes"],
        "input_shape": list(spec.input_shape),
        "input_dtype": spec.input_dtype,
        **describe_output(output),
        "latency_ms_p50": figures["latency_ms_p50"],
        "latency_ms_p95": figures["latency_ms_p95"],
        "threads": figures["threads"],
        "recipes": applicability(model),
        "report": figures,
    }
    if isinstance(model, TokenIdsModel):
        result["hf"] = describe_hf(model)
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
    """The job; on several hosts, the others take part from the start until the recipe has run (the rest is this
    host's alone, so they leave then)."""
    with contextlib.ExitStack() as on_hosts:
        on_hosts.enter_context(hosts.joined(hosts.Hosts.from_spec(spec.hosts) if spec.hosts else None, report))
        return _run_recipe(spec, report, release_hosts=on_hosts.close)


def _run_recipe(spec: JobSpec, report: Reporter, release_hosts) -> dict[str, Any]:
    config = parse_config(spec.recipe, spec.config)  # before loading: bad settings fail fast
    recipe = get_recipe(spec.recipe)
    steps = JobSteps(report, ["load", "measure original", spec.recipe, "save", "measure optimized"])
    steps.begin("load")
    model, fmt = load_model(spec.model_path, architecture=spec.architecture)
    example = example_for(model, spec.input_shape, spec.input_dtype)
    call_with_example(model, example, spec.input_dtype)
    splits = _load_splits(spec, model)

    steps.begin("measure original")
    # The original's outputs, once: both measurements judge fidelity against them, on the same inputs.
    reference = reference_outputs(model, example, splits)
    task = model_task(model)  # the result (TorchScript, ONNX) no longer says so itself
    before = measure_model(model, example, spec.model_path, splits=splits, reference=reference, task=task)

    outcome = _run(recipe, model, splits, config, steps.begin(spec.recipe), example=example,
                   checkpoint_dir=spec.checkpoint_dir, architecture=spec.architecture, models=_load_models(spec))
    release_hosts()
    architecture = outcome.architecture or spec.architecture  # a distilled student has its own

    steps.begin("save")
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    primary_format = outcome.primary_format or _kept_format(fmt, outcome.model)
    # A trimmed vocabulary: the original's example ids may be past it.
    saving_example = (example_for(outcome.model, spec.input_shape, spec.input_dtype)
                      if _own_tokenizer(model, outcome.model) else example)
    try:
        saved = save_all_formats(outcome.model, out_dir, saving_example, primary=primary_format,
                                 architecture=architecture)
    except RecipeError as error:
        if primary_format != HF:
            raise
        # What a recipe made of a transformers model may not fit its config (unevenly pruned layers): TorchScript.
        primary_format = TORCHSCRIPT
        saved = save_all_formats(outcome.model, out_dir, saving_example, primary=primary_format,
                                 architecture=architecture)
        saved.skipped[HF] = str(error)

    extra = _write_extra_files(out_dir, outcome.extra_files)

    steps.begin("measure optimized")
    primary = out_dir / saved.files[primary_format]
    # Measure what was saved, not what is in memory.
    optimized, _ = load_model(primary, architecture=architecture)
    own_tokenizer = _own_tokenizer(model, optimized) and splits is not None and splits.tokenized is not None
    if own_tokenizer:
        after = _measure_retokenized(spec, model, optimized, example, primary, splits, reference, task)
    else:
        after = measure_model(optimized, example, primary, splits=splits, reference=reference, task=task)
    size_notes = _weigh_like_for_like(spec, fmt, primary_format, example, before)
    fitted = _data_fit(spec, splits)
    error = after["output_error"] or {}
    result = {
        "recipe": spec.recipe,
        "config": config.to_dict(),
        "format": fmt,
        "primary_format": primary_format,  # the result's own format: a chain's next step runs on this file
        "backend": outcome.backend,
        "input_shape": list(spec.input_shape),
        "input_dtype": spec.input_dtype,
        "before": before,
        "after": after,
        "ratios": compare_reports(before, after),
        "formats": {"written": saved.files, "skipped": saved.skipped, "extra": extra},
        # The page's "largest output difference" row reads these two.
        "max_abs_diff": error.get("max_abs"),
        "reference_max_abs": error.get("reference_max_abs"),
        "threads": after["threads"],
        "device": after["device"],
        "notes": outcome.notes + saved.notes + size_notes + ([fitted["note"]] if fitted and fitted["note"] else [])
        + ([RETOKENIZED_NOTE] if own_tokenizer else []),
        "data": fitted,  # how the dataset's samples were made to fit the model, or None when they fit as given
        "extras": outcome.extras,
        "architecture": architecture,
        "versions": library_versions(),
    }
    _write_json_atomically(out_dir / REPORT_NAME, result)
    steps.finish()
    return {**result, "artifacts": [*saved.files.values(), *extra, REPORT_NAME]}


RETOKENIZED_NOTE = ("the result has a tokenizer of its own (a trimmed vocabulary): it was measured on the same "
                    "validation texts tokenized by it, and its outputs were compared with the original's (on the "
                    "original's tokens) as mean-pooled embeddings, since the two split some words into other pieces")


def _own_tokenizer(original: Any, result: Any) -> bool:
    """Whether the result is a Hugging Face folder whose vocabulary is not the original's (trimmed)."""
    return (isinstance(original, TokenIdsModel) and isinstance(result, TokenIdsModel)
            and result.folder.config.get("vocab_size") != original.folder.config.get("vocab_size"))


def _measure_retokenized(spec: JobSpec, original: TokenIdsModel, result: TokenIdsModel, example: torch.Tensor,
                         path: Path, splits: Any, reference: torch.Tensor | None, task: str | None) -> dict[str, Any]:
    """The result measured on the dataset's texts tokenized by its own tokenizer (the same texts in the same split:
    an encoder gets one row a text), compared on the same texts with the original, mean-pooled when its outputs are
    per token."""
    from optimizers.data.tokens import token_splits

    own = dataclasses.replace(token_splits(spec.dataset_path, result), input_dtype=spec.input_dtype)
    pooled = reference is not None and reference.dim() == 3
    if pooled:
        reference = pooled_reference(reference, example, splits, original.pad_token_id)
    return measure_model(result, example_for(result, spec.input_shape, spec.input_dtype), path, splits=own,
                         reference=reference, task=task, pooled_pad=result.pad_token_id if pooled else False)


def model_task(model: Any) -> str | None:
    """What a transformers model's one output is, for the report: a causal language model's logits, an encoder's
    embeddings (last hidden state), or None (anything else: classifiers' scores included)."""
    if not isinstance(model, TokenIdsModel):
        return None
    if model.is_causal_lm:
        return LANGUAGE_MODEL
    return EMBEDDINGS if model.output == "last_hidden_state" else None


def _kept_format(fmt: str, result: Any) -> str:
    """The upload's format for the result when it can hold it; a Hugging Face folder only holds a model transformers
    still runs (a traced or converted result becomes TorchScript)."""
    if fmt == HF and not isinstance(result, TokenIdsModel):
        return TORCHSCRIPT
    return fmt if fmt in FORMATS else TORCHSCRIPT


def _weigh_like_for_like(spec: JobSpec, fmt: str, primary_format: str, example: torch.Tensor,
                         before: dict[str, Any]) -> list[str]:
    """Make the original's size_bytes that of the original written in the result's format, when they differ.

    The uploaded file's own size stays, as uploaded_size_bytes. A safetensors upload returned as TorchScript
    would otherwise compare two formats, and a model that shrank could look bigger.
    """
    if primary_format == fmt:
        return []
    from optimizers.data.limits import describe_bytes

    original, _ = load_model(spec.model_path, architecture=spec.architecture)  # the recipe may have changed ours
    size = size_in_format(original, primary_format, example, spec.architecture)
    label, uploaded = LABELS.get(primary_format, primary_format), LABELS.get(fmt, fmt)
    if size is None:
        return [f"file sizes compare the uploaded {uploaded} file with the result's {label} file: the original "
                f"could not be written as {label}"]
    before.update(uploaded_size_bytes=before["size_bytes"], uploaded_format=fmt, size_format=primary_format,
                  size_bytes=size)
    return [f"file sizes compare like for like: the original written as {label} takes {describe_bytes(size)} "
            f"(the uploaded {uploaded} file {describe_bytes(before['uploaded_size_bytes'])})"]


def _data_fit(spec: JobSpec, splits: Any) -> dict[str, Any] | None:
    """The dataset's sample shape and what was done to fit it to the model's input (for a text dataset: how its
    texts were tokenized), or None without a dataset."""
    if splits is None:
        return None
    from optimizers.data.compat import describe_fit
    from optimizers.data.tokens import describe_tokenized

    sample_shape = list(splits.val_x.shape[1:])
    if splits.tokenized is not None:
        return {"sample_shape": sample_shape, "sample_dtype": "int64", "adapted": True,
                "note": describe_tokenized(splits.tokenized), "tokenized": splits.tokenized}
    sample_dtype = _sample_dtype(splits)
    note = describe_fit(sample_shape, spec.input_shape, spec.input_dtype, sample_dtype)
    return {"sample_shape": sample_shape, "sample_dtype": sample_dtype, "adapted": note is not None, "note": note}


def _sample_dtype(splits: Any) -> str:
    return "int64" if splits.val_x.dtype == torch.int64 else "float32"


def _write_extra_files(out_dir: Path, files: dict[str, bytes]) -> list[str]:
    """Write a recipe's extra files under their fixed names, each complete or not at all."""
    for name, content in files.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"a recipe asked for an unsafe file name {name!r}")
        partial = out_dir / f".partial-{name}"
        partial.write_bytes(content)
        os.replace(partial, out_dir / name)
    return list(files)


def _run(recipe, model, splits, config, report, **context) -> Any:
    """Call a recipe with the job context it asks for (keyword-only: example, checkpoint_dir, architecture,
    models)."""
    accepted = inspect.signature(recipe.run).parameters
    return recipe.run(model, splits, config, report, **{k: v for k, v in context.items() if k in accepted})


def _load_models(spec: JobSpec) -> dict[str, dict[str, Any]]:
    """The other uploaded models the settings name, by role: {"student": {"model", "format", "architecture"}}."""
    loaded = {}
    for role, entry in spec.models.items():
        model, fmt = load_model(entry["path"], architecture=entry["architecture"])
        loaded[role] = {"model": model, "format": fmt, "architecture": entry["architecture"]}
    return loaded


def _load_splits(spec: JobSpec, model: nn.Module) -> Any:
    """The prepared dataset's train/val splits (a text dataset's tokenized by the model's own tokenizer), or None
    when the job has no dataset. A dataset the model cannot take at all (texts for a model without a tokenizer,
    float samples for a model of token ids, ids past its vocabulary) fails the job saying why; the web refuses
    these at submit already."""
    if not spec.dataset_path:
        return None
    # numpy and the dataset code only for jobs with data
    from optimizers.data.compat import compatibility, text_compatibility
    from optimizers.data.errors import DatasetError
    from optimizers.data.splits import load_splits
    from optimizers.data.tokens import is_text_npz, token_splits, vocabulary_problem

    if is_text_npz(spec.dataset_path):
        if not isinstance(model, TokenIdsModel):
            raise DatasetError(f"the dataset does not fit the model: {text_compatibility(None)}")
        return dataclasses.replace(token_splits(spec.dataset_path, model), input_dtype=spec.input_dtype)
    splits = dataclasses.replace(load_splits(spec.dataset_path), input_dtype=spec.input_dtype)
    sample_dtype = _sample_dtype(splits)
    if spec.input_dtype == "int64":
        reason = compatibility(list(splits.val_x.shape[1:]), spec.input_shape, spec.input_dtype, sample_dtype)
        if reason:
            raise DatasetError(f"the dataset does not fit the model: {reason}")
    if isinstance(model, TokenIdsModel) and sample_dtype == "int64":
        problem = vocabulary_problem(torch.cat([splits.train_x, splits.val_x]), model.folder.config)
        if problem:
            raise DatasetError(f"the dataset's token ids do not fit the model: {problem}")
    return splits


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def library_versions() -> dict[str, str]:
    """Python's and the libraries' versions that made the result, for the model card."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
