"""Refuse TorchScript code that reaches outside the model before torch compiles it.

TorchScript cannot import or eval, but a few ATen ops touch the file system: `aten::from_file` reads any file
the worker's user can read, and the model can then leak it through its error text or output shape (tried: a
root-only file came back in the inspection error). TorchScript has no getattr-by-string, so such an op can only
be reached through its literal name in the archive's code; the names are searched for as whole words.
"""
import os
import re
import zipfile

from optimizers.errors import ModelFileError

_FILE_OPS = re.compile(r"\b(from_file|load_library)\b")
_MAX_CODE_BYTES = 64 * 1024 * 1024


def check_torchscript_archive(path: str | os.PathLike) -> None:
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if "/code/" not in member.filename or not member.filename.endswith(".py"):
                continue
            if member.file_size > _MAX_CODE_BYTES:
                raise ModelFileError(f"the TorchScript code file {member.filename!r} is implausibly large")
            found = _FILE_OPS.search(archive.read(member).decode("utf-8", errors="replace"))
            if found:
                raise ModelFileError(f"the TorchScript code calls {found.group(1)}, which reads files on the "
                                     "worker; models that touch the file system are refused")
