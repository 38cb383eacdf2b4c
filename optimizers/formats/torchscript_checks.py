"""Refuse TorchScript code that reaches outside the model before torch compiles it.

Loading a TorchScript archive compiles its code and runs the `__setstate__` methods it defines, so the code is
checked as text first: no refused operator's name (`aten::from_file` would read any file the process can read and
leak it through an error text or an output shape) and no operator namespace beyond tensor math, wherever it appears
(`optimizers.formats.operators`). TorchScript resolves operators only through literal names (no getattr by a
computed string), so a name cannot be assembled from pieces. torch opens members ignoring case, so every member
whose name ends in `.py` in any case is code. The pickles (`data.pkl`, `constants.pkl`) may name custom C++
classes, whose `__setstate__` runs while loading: only those of tensor-math namespaces pass. After loading,
`check_torchscript_module` walks the compiled graphs.
"""
import os
import zipfile

from optimizers.errors import ModelFileError
from optimizers.formats.operators import check_torchscript_classes, check_torchscript_code

_MAX_CODE_BYTES = 64 * 1024 * 1024


def check_torchscript_archive(path: str | os.PathLike) -> None:
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            name = member.filename.lower()
            if not name.endswith((".py", ".pkl")):
                continue
            if member.file_size > _MAX_CODE_BYTES:
                raise ModelFileError(f"the TorchScript member {member.filename!r} is implausibly large")
            text = archive.read(member).decode("utf-8" if name.endswith(".py") else "latin-1", errors="replace")
            if name.endswith(".py"):
                check_torchscript_code(text, member.filename)
            else:  # data.pkl and constants.pkl name the classes whose __setstate__ loading calls
                check_torchscript_classes(text, member.filename)
