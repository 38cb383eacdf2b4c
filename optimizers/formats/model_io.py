"""Recognise, load and save the four model formats Slimforge accepts.

"torchscript": a torch.jit.save archive (.pt). "export": a torch.export.save archive (.pt2).
"onnx": an ONNX model with every tensor inside the file (.onnx). "safetensors": a state dict
(.safetensors) loaded into one of the zoo's architectures. "hf": a zipped Hugging Face folder (config.json,
*.safetensors, tokenizer files) that transformers builds (optimizers.formats.hf_folder); it is read, not written:
a result is saved in the formats above. `detect_format` looks at the first bytes,
a zip's table of contents, a safetensors JSON header or the ONNX protobuf: it never unpickles and
never runs model code, so it is safe on any upload.
"""

import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optimizers.errors import ModelFileError, first_line
from optimizers.formats.archives import EXPORT, NEVER_UNPICKLES, NOT_A_MODEL, TORCHSCRIPT, zip_model_format
from optimizers.formats.export_checks import check_export_archive
from optimizers.formats.export_program import export_program
from optimizers.formats.hf_folder import HF
from optimizers.formats.operators import check_graph_module, check_torchscript_module
from optimizers.formats.torchscript_checks import check_torchscript_archive

ONNX = "onnx"
SAFETENSORS = "safetensors"
# The formats results are written in; a Hugging Face folder (a zip) only for models transformers built.
FORMATS = (TORCHSCRIPT, EXPORT, ONNX, SAFETENSORS, HF)
_EXTENSIONS = {TORCHSCRIPT: ".pt", EXPORT: ".pt2", ONNX: ".onnx", SAFETENSORS: ".safetensors", HF: ".zip"}
_PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ONNX_FIRST_BYTE = b"\x08"  # a ModelProto starts with its ir_version field (field 1, varint)
_OTHER_FILES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip file", b"\x89HDF": "an HDF5 file (a Keras model?)"}


def extension(fmt: str) -> str:
    if fmt not in _EXTENSIONS:
        raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
    return _EXTENSIONS[fmt]


def detect_format(path: str | os.PathLike) -> str:
    """Return "torchscript", "export", "onnx", "safetensors" or "hf"; raise ModelFileError saying what is wrong."""
    return _detect(Path(path))[0]


def _detect(path: Path) -> tuple[str, Any]:
    """(format, the parsed ONNX ModelProto, the checked HfFolder, or None): ONNX must be parsed to be recognised
    at all, a Hugging Face folder checked."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as error:
        raise ModelFileError(f"cannot read the model file: {error.strerror or error}") from error
    if not head:
        raise ModelFileError(f"{NOT_A_MODEL}: the file is empty")
    # Safetensors first: a header length can begin with the bytes "PK", a real zip's magic never
    # reads as a plausible header length.
    if _looks_like_safetensors(head, size):
        from optimizers.formats.statedict import read_safetensors_header

        read_safetensors_header(path)  # validates names, dtypes and offsets; raises ModelFileError
        return SAFETENSORS, None
    if head.startswith(b"PK"):
        fmt = zip_model_format(path)
        if fmt == HF:
            from optimizers.formats.hf_folder import check_hf_zip

            return fmt, check_hf_zip(path)  # refuses remote code, pickles and escaping paths before any load
        return fmt, None
    if head.startswith(_PICKLE_PROTOCOLS):
        raise ModelFileError(f"{NOT_A_MODEL}: it is a Python pickle (a torch.save file in the legacy format, "
                             f"say); {NEVER_UNPICKLES}")
    if head.startswith(_ONNX_FIRST_BYTE):
        from optimizers.formats.onnx_checks import check_onnx_file

        return ONNX, check_onnx_file(path)
    for magic, what in _OTHER_FILES.items():
        if head.startswith(magic):
            raise ModelFileError(f"{NOT_A_MODEL}: it looks like {what}")
    raise ModelFileError(f"{NOT_A_MODEL}: its content matches none of them")


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # 8-byte little-endian header length, then the JSON header itself.
    if len(head) < 9:
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    return 2 <= header_length <= size - 8 and head[8:9] == b"{"


_UNPACKED_FOLDERS: list[tempfile.TemporaryDirectory] = []


def load_model(path: str | os.PathLike, architecture: dict | None = None) -> tuple[Any, str]:
    """Load a model onto the CPU; return (model, format). Errors become ModelFileError.

    `architecture` ({"name", "config"}) is required for safetensors, which hold weights only.
    An ONNX file comes back as an `OnnxModel`, callable with tensors like a module.
    """
    fmt, parsed = _detect(Path(path))
    if fmt == SAFETENSORS:
        return _load_safetensors(path, architecture), fmt
    if fmt == HF:
        from optimizers.formats.hf_folder import load_hf_folder

        # The unpacked folder (its tokenizer files) must outlive the model, which may be deep-copied: it is kept
        # here and removed when the process (a throwaway sandbox child) exits.
        workdir = tempfile.TemporaryDirectory(prefix="hf-")
        _UNPACKED_FOLDERS.append(workdir)
        return load_hf_folder(path, parsed, workdir.name), fmt
    if fmt == ONNX:
        from optimizers.formats.onnx_model import OnnxModel

        return OnnxModel(path, parsed), fmt
    if fmt == EXPORT:
        check_export_archive(path)
    if fmt == TORCHSCRIPT:
        check_torchscript_archive(path)
    try:
        if fmt == TORCHSCRIPT:
            loaded = torch.jit.load(str(path), map_location="cpu")
        else:
            # A file object, because torch.export.load warns about any path not ending in .pt2
            # and uploads are stored under server-made names.
            with open(path, "rb") as file:
                loaded = torch.export.load(file)
    except Exception as error:  # noqa: BLE001 - any failure inside torch means an unusable file
        raise ModelFileError(f"cannot load the {fmt} model: {first_line(error)}") from error
    # What torch compiled, not what the archive's text says: the operators its graphs really call.
    if fmt == TORCHSCRIPT:
        check_torchscript_module(loaded)
        # Scripted code branches on self.training (dropout, batch norm): always infer.
        return loaded.eval(), fmt
    check_graph_module(loaded.graph_module)
    return loaded.module(), fmt


def _load_safetensors(path: str | os.PathLike, architecture: dict | None) -> nn.Module:
    if not isinstance(architecture, dict) or not isinstance(architecture.get("name"), str):
        raise ModelFileError("a safetensors file holds weights only: choose the model's architecture to load it")
    from optimizers.formats.statedict import load_safetensors_model

    return load_safetensors_model(path, architecture["name"], architecture.get("config") or {})


def save_model(
    module: nn.Module, path: str | os.PathLike, fmt: str, example_input: torch.Tensor
) -> list[str]:
    """Write `module` as TorchScript or torch.export; return notes worth showing the user (lost dynamism, say).

    A plain nn.Module saved as TorchScript is traced with `example_input`. Saving as export
    re-exports, keeping the dynamic dimensions an exported graph module was made with.
    `optimizers.formats.save_all.save_all_formats` writes every format, ONNX and safetensors included.
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
    raise ValueError(f"save_model writes torchscript or export, not {fmt!r}; use optimizers.formats.save_all")
