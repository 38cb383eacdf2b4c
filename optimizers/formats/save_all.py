"""Save a model in every format it can take: the job's downloads.

The primary format (the upload's) comes first and must succeed. Then TorchScript (model.pt),
torch.export (model.pt2), ONNX (model.onnx) and safetensors (model.safetensors, for models built
from a named architecture) are each tried; a format the model cannot take is skipped with a short
reason. A model transformers built from an uploaded Hugging Face folder is also written as one (model.zip). Every
file is written under a temporary name, read back through `formats.load_model`
(so a download is always a file Slimforge itself accepts), compared with the model's own output on
the example input, and only then renamed into place.
"""

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from optimizers.errors import ModelFileError, RecipeError, first_line
from optimizers.formats import writers
from optimizers.formats.hf_folder import HF, TokenIdsModel
from optimizers.formats.model_io import EXPORT, FORMATS, ONNX, SAFETENSORS, TORCHSCRIPT, extension, load_model
from optimizers.formats.writers import CannotWrite, ProgramCache

MODEL_NAME = "model"  # fixed: user-supplied names never reach the file system
_WRITERS = {TORCHSCRIPT: writers.write_torchscript, EXPORT: writers.write_export, ONNX: writers.write_onnx,
            SAFETENSORS: writers.write_safetensors, HF: writers.write_hf}
LABELS = {TORCHSCRIPT: "TorchScript", EXPORT: "torch.export", ONNX: "ONNX", SAFETENSORS: "safetensors",
          HF: "Hugging Face folder"}
_NO_ARCHITECTURE = "safetensors holds weights only; it is written for models built from a named architecture"


@dataclass
class SavedModels:
    files: dict[str, str] = field(default_factory=dict)  # format -> file name inside out_dir
    skipped: dict[str, str] = field(default_factory=dict)  # format -> why it was not written
    notes: list[str] = field(default_factory=list)


def save_all_formats(
    module: Any, out_dir: str | os.PathLike, example: torch.Tensor, *, primary: str, architecture: dict | None
) -> SavedModels:
    """Write `module` into `out_dir` in `primary` (raising on failure), then in every other format it takes."""
    if primary not in FORMATS:
        raise ValueError(f"unknown model format {primary!r}; known: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _inference_mode(module)
    saved = SavedModels()
    program = ProgramCache(module, example)
    reference = _outputs(module, example)
    for fmt in [primary, *(fmt for fmt in FORMATS if fmt != primary)]:
        if fmt == HF and not isinstance(module, TokenIdsModel) and fmt != primary:
            continue  # not a format of this kind of model at all: nothing to explain on its page
        if fmt == SAFETENSORS and architecture is None:
            if fmt == primary:
                raise ValueError("save_all_formats needs the architecture to write safetensors, the primary format")
            saved.skipped[fmt] = _NO_ARCHITECTURE
            continue
        try:
            # A primary file is read back as the result is measured; a Hugging Face folder is checked here already,
            # as its config may not describe what a recipe made of the model (the caller then keeps TorchScript).
            checked = fmt != primary or fmt == HF
            name, notes = _write(fmt, module, out_dir, example, program, reference if checked else None,
                                 architecture)
        except CannotWrite as reason:
            if fmt == primary:
                raise RecipeError(f"the result cannot be saved as {LABELS[fmt]}, the upload's format: "
                                  f"{reason}") from reason
            saved.skipped[fmt] = str(reason)
            continue
        except Exception as error:  # noqa: BLE001 - an exporter failure costs one download, not the job
            if fmt == primary or (isinstance(error, OSError) and error.errno == errno.ENOSPC):
                raise  # a full disk is no property of the format: the job fails and says so
            saved.skipped[fmt] = f"writing {LABELS[fmt]} failed: {first_line(error)}"
            continue
        saved.files[fmt] = name
        saved.notes.extend(note for note in notes if note not in saved.notes)
    return saved


def _inference_mode(module: Any) -> None:
    """Downloads are for inference: a model a recipe left training would bake dropout into every file."""
    if getattr(module, "training", False):
        try:
            module.eval()
        except NotImplementedError:
            pass  # torch.export graph modules refuse train()/eval(); they have no training mode to leave


def _write(fmt, module, out_dir: Path, example, program, reference, architecture) -> tuple[str, list[str]]:
    name = MODEL_NAME + extension(fmt)
    partial = out_dir / f".partial-{name}"  # keeps the extension torch.export.save expects
    try:
        notes = _WRITERS[fmt](module, partial, example, program)
        if reference is not None:
            _check_round_trip(fmt, partial, example, reference, architecture)
        os.replace(partial, out_dir / name)  # a reader never sees half a model
    finally:
        partial.unlink(missing_ok=True)
        for leftover in out_dir.glob(f".partial-{name}.*"):  # an exporter's side files (external data)
            leftover.unlink()
    return name, notes


def _check_round_trip(fmt: str, path: Path, example: torch.Tensor, reference: list[torch.Tensor],
                      architecture: dict | None) -> None:
    """Load what was written the way an upload is loaded, and insist on the same outputs."""
    label = LABELS[fmt]
    try:
        loaded, detected = load_model(path, architecture)
    except ModelFileError as error:  # a Hugging Face folder whose config no longer describes the weights
        raise CannotWrite(f"the written {label} does not load back: {first_line(error)}") from error
    if detected != fmt:
        raise CannotWrite(f"the written {label} file reads back as {LABELS[detected]}")
    outputs = _outputs(loaded, example)
    if len(outputs) != len(reference):
        raise CannotWrite(f"the {label} file returns {len(outputs)} tensor(s) instead of {len(reference)}")
    for got, expected in zip(outputs, reference, strict=True):
        if got.shape != expected.shape:
            raise CannotWrite(f"the {label} file returns shape {list(got.shape)} instead of {list(expected.shape)}")
        difference = _max_difference(got, expected)
        if difference > _tolerance(expected):
            raise CannotWrite(f"the {label} file's outputs differ from the model's (max abs diff {difference:.3g})")


def _outputs(model: Any, example: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        output = model(example)
    return [tensor.detach().cpu() for tensor in _flatten(output)]


def _flatten(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [tensor for value in output.values() for tensor in _flatten(value)]
    if isinstance(output, list | tuple):
        return [tensor for value in output for tensor in _flatten(value)]
    return []


def _max_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    if expected.numel() == 0:
        return 0.0
    difference = (got.double() - expected.double()).abs()
    # NaN where the model itself gives NaN is agreement, not a difference.
    both_nan = got.double().isnan() & expected.double().isnan()
    return float(difference.masked_fill(both_nan, 0).max())


def _tolerance(expected: torch.Tensor) -> float:
    """Exporters fuse and reorder float math: allow rounding, relative to the output's scale."""
    if not expected.is_floating_point():
        return 0.0
    relative = 1e-3 if expected.dtype in (torch.float32, torch.float64) else 2e-2
    finite = expected[expected.isfinite()]
    scale = float(finite.abs().max()) if finite.numel() else 1.0
    return relative * max(1.0, scale)


def size_in_format(module: Any, fmt: str, example: torch.Tensor, architecture: dict | None) -> int | None:
    """The bytes `module` takes written as `fmt`, or None when it cannot be written so.

    A report compares file sizes like for like: a model uploaded as safetensors and returned as TorchScript is
    weighed as TorchScript on both sides, or a model that shrank could look bigger.
    """
    if fmt == SAFETENSORS and architecture is None:
        return None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="slimforge-size-") as folder:
        try:
            _inference_mode(module)
            name, _ = _write(fmt, module, Path(folder), example, ProgramCache(module, example), None, architecture)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise  # a full disk fails the job and says so, as everywhere else
            return None
        except Exception:  # noqa: BLE001 - an exporter that refuses the original leaves the upload's size
            return None
        return os.path.getsize(Path(folder) / name)
