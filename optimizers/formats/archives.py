"""Tell the zip-based model files apart from their table of contents alone, never unpickling anything.

torch.jit.save and torch.export.save both write zip archives, and so does torch.save. Only the member
names are read here: a TorchScript archive carries its code, a torch.export archive its program as
JSON, and a torch.save checkpoint nothing but pickles, which Slimforge refuses.
"""

import zipfile
from pathlib import Path

from optimizers.errors import ModelFileError
from optimizers.formats.hf_folder import HF, is_hf_zip

TORCHSCRIPT = "torchscript"
EXPORT = "export"
NOT_A_MODEL = ("not a model file Slimforge reads (TorchScript, torch.export, ONNX, safetensors, or a zipped "
               "Hugging Face folder)")
NEVER_UNPICKLES = ("Slimforge never unpickles uploads; save the model with torch.jit.save or torch.export.save, "
                   "or save its state_dict as safetensors and name its architecture")
ZIP_MAGIC = b"PK\x03\x04"


def zip_model_format(path: Path) -> str:
    """"torchscript", "export" or "hf" (a Hugging Face folder) for a zip archive; raise ModelFileError for any
    other archive."""
    names = _member_names(path)
    # Both writers put every member under one root folder named after the file; drop it.
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "constants.pkl" in inner and any(name.startswith("code/") for name in inner):
        return TORCHSCRIPT
    if "archive_format" in inner:
        if any(name.startswith("models/") and name.endswith(".json") for name in inner):
            return EXPORT
        raise ModelFileError(f"{NOT_A_MODEL}: a .pt2 package without an exported program "
                             "(an AOTInductor-compiled package, say); save it with torch.export.save")
    # Older torch.export.save versions wrote these at the top level; torch.export.load still reads them.
    if "serialized_exported_program.json" in names:
        return EXPORT
    if is_hf_zip(names):
        return HF
    if "data.pkl" in inner:
        raise ModelFileError(f"{NOT_A_MODEL}: it is a torch.save checkpoint (pickled objects without the "
                             f"model's code); {NEVER_UNPICKLES}")
    raise ModelFileError(f"{NOT_A_MODEL}: a zip archive without a model inside")


def _member_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        # A zip written until a crash starts with the local-header magic but lacks the directory at its end.
        raise ModelFileError(f"{NOT_A_MODEL}: the zip archive is truncated or corrupt") from error
    if not names:
        raise ModelFileError(f"{NOT_A_MODEL}: the zip archive is empty")
    distinct = set(names)
    if len({name.lower() for name in distinct}) != len(distinct):
        # Two members one reader tells apart and another may not: which one torch opens is then not the one checked.
        raise ModelFileError(f"{NOT_A_MODEL}: the zip archive holds two members whose names differ only in case")
    return names
