"""Recognise, load and save the two model formats Slimforge accepts.

"torchscript": a torch.jit.save archive (.pt). "export": a torch.export.save archive (.pt2).
Both are zip files; `detect_format` reads only the zip's table of contents, never unpickles
anything, so it is safe to call on any upload.
"""

import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from optimizers.errors import ModelFileError, first_line
from optimizers.export_shapes import export_program

TORCHSCRIPT = "torchscript"
EXPORT = "export"
FORMATS = (TORCHSCRIPT, EXPORT)
_EXTENSIONS = {TORCHSCRIPT: ".pt", EXPORT: ".pt2"}
_NOT_A_MODEL = "not a TorchScript or torch.export archive"
_ZIP_MAGIC = b"PK\x03\x04"


def extension(fmt: str) -> str:
    if fmt not in _EXTENSIONS:
        raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
    return _EXTENSIONS[fmt]


def detect_format(path: str | os.PathLike) -> str:
    """Return "torchscript" or "export" from the archive's member names; raise ModelFileError."""
    names = _member_names(Path(path))
    # Both writers put every member under one root folder named after the file; drop it.
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "constants.pkl" in inner and any(name.startswith("code/") for name in inner):
        return TORCHSCRIPT
    if "archive_format" in inner:
        if any(name.startswith("models/") and name.endswith(".json") for name in inner):
            return EXPORT
        raise ModelFileError(f"{_NOT_A_MODEL}: a .pt2 package without an exported program "
                             "(an AOTInductor-compiled package, say); save it with torch.export.save")
    # torch.export.save in PyTorch 2.7 wrote these at the top level; torch.export.load still reads them.
    if "serialized_exported_program.json" in names:
        return EXPORT
    if "data.pkl" in inner:
        raise ModelFileError(f"{_NOT_A_MODEL}: it looks like a torch.save checkpoint (pickled weights "
                             "without the model's code); save the model with torch.jit.save or "
                             "torch.export.save")
    raise ModelFileError(f"{_NOT_A_MODEL}: a zip archive without a model inside")


def _member_names(path: Path) -> list[str]:
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError as error:
        raise ModelFileError(f"cannot read the model file: {error.strerror or error}") from error
    if not head:
        raise ModelFileError(f"{_NOT_A_MODEL}: the file is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        # A zip written until the crash starts with the local-header magic but lacks its
        # directory at the end; anything else never was a zip.
        if head == _ZIP_MAGIC:
            raise ModelFileError(f"{_NOT_A_MODEL}: the archive is truncated or corrupt") from error
        raise ModelFileError(f"{_NOT_A_MODEL}: not a zip archive") from error
    if not names:
        raise ModelFileError(f"{_NOT_A_MODEL}: the archive is empty")
    return names


def load_model(path: str | os.PathLike) -> tuple[nn.Module, str]:
    """Load a model onto the CPU; return (module, format). Errors become ModelFileError."""
    fmt = detect_format(path)
    try:
        if fmt == TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location="cpu")
            # Scripted code branches on self.training (dropout, batch norm): always infer.
            return module.eval(), fmt
        # A file object, because torch.export.load warns about any path not ending in .pt2
        # and uploads are stored under server-made names.
        with open(path, "rb") as file:
            program = torch.export.load(file)
        return program.module(), fmt
    except Exception as error:  # noqa: BLE001 - any failure inside torch means an unusable file
        raise ModelFileError(f"cannot load the {fmt} model: {first_line(error)}") from error


def save_model(
    module: nn.Module, path: str | os.PathLike, fmt: str, example_input: torch.Tensor
) -> list[str]:
    """Write `module` in `fmt`; return notes worth showing the user (for example, lost dynamism).

    A plain nn.Module saved as TorchScript is traced with `example_input`. Saving as export
    re-exports, keeping the dynamic dimensions an exported graph module was made with.
    """
    path = os.fspath(path)
    if fmt == TORCHSCRIPT:
        if not isinstance(module, torch.jit.ScriptModule):
            module = torch.jit.trace(module, example_input)
        torch.jit.save(module, path)
        return []
    if fmt == EXPORT:
        if isinstance(module, torch.jit.ScriptModule):
            raise ValueError("a TorchScript module cannot be saved as a torch.export archive")
        program, notes = export_program(module, example_input)
        torch.export.save(program, path)
        return notes
    raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")

