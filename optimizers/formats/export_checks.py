"""Refuse the parts of a torch.export archive that torch.export.load would run as Python.

torch.export.load (2.13) is documented as unsafe for untrusted files: it unpickles the sample
inputs (falling back to an unrestricted unpickler when the safe one fails), unpickles tensor
subclasses and "opaque" constants without any restriction, loads AOTInductor shared libraries,
evaluates symbolic sizes with sympy (Python eval) and exec()s the shape guards. Before torch sees
an upload, this module reads the archive as plain zip and JSON and refuses each such path unless
it is harmless: pickles must load with `torch.load(weights_only=True)` (PyTorch's allow-listed
unpickler), and expressions must pass `optimizers.formats.safe_expressions`.
"""

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from optimizers.errors import ModelFileError, first_line
from optimizers.formats.archives import NEVER_UNPICKLES
from optimizers.formats.operators import check_exported_targets
from optimizers.formats.safe_expressions import unsafe_expression

_REFUSED = "the torch.export archive is refused"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
# Members of the format written before the pt2 archive layout; each is a torch.save pickle.
_OLD_FORMAT_PICKLES = ("serialized_state_dict.pt", "serialized_constants.pt", "serialized_example_inputs.pt")
_PICKLE_HEADERS = {b"\x80" + bytes([protocol]) for protocol in range(2, 6)}  # PROTO 2-5, what torch.save writes


def check_export_archive(path: str | os.PathLike) -> None:
    """Raise ModelFileError unless torch.export.load can read `path` without running code from it."""
    # Imported here: this module pulls in torch._dynamo (a second or more), needed only for .pt2 files.
    from torch.export.pt2_archive import constants as pt2

    try:
        with zipfile.ZipFile(path) as archive:
            _check(_Archive(archive), pt2)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise ModelFileError(f"{_REFUSED}: it is truncated or corrupt ({first_line(error)})") from error


class _Archive:
    """Members by their name below the archive's root folder, found the way torch's reader finds it."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        names = archive.namelist()
        # With two members of one name, this reader and torch's could each pick a different one; so too with two
        # names that differ only in case, should a reader ignore case.
        if len(set(names)) != len(names):
            raise ModelFileError(f"{_REFUSED}: it holds two members under the same name")
        if len({name.lower() for name in names}) != len(set(names)):
            raise ModelFileError(f"{_REFUSED}: it holds two members whose names differ only in case")
        # torch's reader takes the first member's folder as the root and reads only below it.
        self.root = names[0].split("/", 1)[0] + "/" if "/" in names[0] else None
        if self.root and any(not name.startswith(self.root) for name in names):
            raise ModelFileError(f"{_REFUSED}: its members are not all inside one folder")
        self.members = {name[len(self.root):]: name for name in names} if self.root else {}

    def read(self, name: str) -> bytes:
        return self.archive.read(self.members[name])

    def json(self, name: str, *, top_level: bool = False) -> Any:
        try:
            return json.loads(self.archive.read(name) if top_level else self.read(name))
        except (ValueError, UnicodeDecodeError) as error:
            raise ModelFileError(f"{_REFUSED}: {name} is not valid JSON") from error


def _check(archive: _Archive, pt2: ModuleType) -> None:
    top_level = archive.archive.namelist()
    # torch.export.load falls back to the old top-level layout when the archive layout fails: check both.
    if "serialized_exported_program.json" in top_level:
        program = "serialized_exported_program.json"
        _check_program(archive.json(program, top_level=True), program)
        for name in _OLD_FORMAT_PICKLES:
            if name in top_level:
                _check_pickle(archive.archive.read(name), name)
    if any(name.startswith(pt2.AOTINDUCTOR_DIR) for name in archive.members):
        # torch.export.load dlopens these shared libraries: native code from the upload.
        raise ModelFileError(f"{_REFUSED}: it contains AOTInductor-compiled native code; save the model with "
                             "torch.export.save alone")
    models = [name for name in archive.members if name.startswith(pt2.MODELS_DIR) and name.endswith(".json")]
    # Opaque constants (plain pickle.loads on load) came after torch 2.11, whose archives and loader have none.
    opaque = getattr(pt2, "OPAQUE_OBJ_FILENAME_PREFIX", None)
    for model_file in models:
        model_name = model_file[len(pt2.MODELS_DIR):-len(".json")]
        _check_program(archive.json(model_file), model_file)
        sample_inputs = pt2.SAMPLE_INPUTS_FILENAME_FORMAT.format(model_name)
        if sample_inputs in archive.members:
            _check_pickle(archive.read(sample_inputs), sample_inputs)
        weights_config = pt2.WEIGHTS_CONFIG_FILENAME_FORMAT.format(model_name)
        constants_config = pt2.CONSTANTS_CONFIG_FILENAME_FORMAT.format(model_name)
        _check_payloads(archive, pt2.WEIGHTS_DIR, weights_config, model_name, opaque)
        _check_payloads(archive, pt2.CONSTANTS_DIR, constants_config, model_name, opaque)
    _check_hidden_pickles(archive, pt2, models)


def _check_hidden_pickles(archive: _Archive, pt2: ModuleType, models: list[str]) -> None:
    """A pickle is a pickle whatever its member is called: every member that is not a raw tensor payload and
    looks like one (a pickle's protocol header, or a torch.save zip) must load with the safe unpickler."""
    raw = set()
    for model_file in models:
        model_name = model_file[len(pt2.MODELS_DIR):-len(".json")]
        for directory, config in ((pt2.WEIGHTS_DIR, pt2.WEIGHTS_CONFIG_FILENAME_FORMAT),
                                  (pt2.CONSTANTS_DIR, pt2.CONSTANTS_CONFIG_FILENAME_FORMAT)):
            name = config.format(model_name)
            entries = archive.json(name).get("config", {}) if name in archive.members else {}
            raw |= {f"{directory}{entry.get('path_name', '')}" for entry in entries.values()
                    if isinstance(entry, dict)} if isinstance(entries, dict) else set()
    for name in archive.members:
        if name in raw:
            continue
        data = archive.read(name)
        if data[:2] in _PICKLE_HEADERS or data[:4] == b"PK\x03\x04":
            _check_pickle(data, name)


def _check_payloads(archive: _Archive, directory: str, config_file: str, model_name: str,
                    opaque: str | None) -> None:
    legacy = f"{directory}{model_name}.pt"  # one torch.save pickle of all weights or constants
    if legacy in archive.members:
        _check_pickle(archive.read(legacy), legacy)
        return
    if config_file not in archive.members:
        return  # torch.export.load refuses the archive itself
    config = archive.json(config_file).get("config", {})
    for fqn, payload in config.items() if isinstance(config, dict) else ():
        if not isinstance(payload, dict):
            raise ModelFileError(f"{_REFUSED}: {config_file} is malformed")
        path_name = str(payload.get("path_name", ""))
        if payload.get("use_pickle") or (opaque is not None and path_name.startswith(opaque)):
            raise ModelFileError(f"{_REFUSED}: {fqn!r} is stored as a pickled Python object (a tensor subclass "
                                 f"or opaque constant); {NEVER_UNPICKLES}")


def _check_pickle(data: bytes, name: str) -> None:
    if not data:
        return
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - whatever the safe unpickler refuses, torch would run unsafely
        found = _REFUSED_GLOBAL.search(str(error))
        what = f"it names {found.group(1)}" if found else first_line(error)
        raise ModelFileError(f"{_REFUSED}: {name} holds pickled objects beyond plain tensors ({what}); "
                             f"{NEVER_UNPICKLES}") from error


def _check_program(program: Any, name: str) -> None:
    # torch.export.load resolves each node's target with getattr from `torch`, whatever the chain: only
    # operator names pass, read from the parsed JSON (escapes and all), the form torch resolves.
    check_exported_targets(_node_targets(program), name)
    for text in _code_strings(program):
        problem = unsafe_expression(text)
        if problem:
            raise ModelFileError(f"{_REFUSED}: {name} carries a size expression or shape guard with {problem}, "
                                 "which torch would run as Python code")


def _node_targets(node: Any) -> Iterator[Any]:
    """Every operator the program names: each graph node's "target" (subgraphs of control flow included) and
    every operator passed as an argument ("as_operator"), which some higher-order operators call."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "target" in item and "inputs" in item:
                yield item["target"]
            if "as_operator" in item:
                yield item["as_operator"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _code_strings(node: Any) -> Iterator[Any]:
    """Every value torch.export.load evaluates as Python: "expr_str" fields and the "guards_code" list."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str":
                    yield value
                elif key == "guards_code":
                    yield from value if isinstance(value, list) else [value]
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
