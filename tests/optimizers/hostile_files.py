"""Hostile and broken model files, built in code: each entry says what the refusal must contain.

Every pickle, and every piece of text that torch would run as Python, tries to create a marker file;
the tests check that the marker never appears.
"""

import io
import json
import pickle
import random
import warnings
import zipfile
from pathlib import Path

import safetensors.torch
import torch

from optimizers.formats.onnx_checks import EXTERNAL_DATA_REFUSED
from optimizers.zoo.models import build_model
from tests.optimizers import onnx_files
from tests.optimizers.models import MLP, MLP_INPUT, build

NOT_A_MODEL = ("not a model file Slimforge reads (TorchScript, torch.export, ONNX, safetensors, or a zipped "
               "Hugging Face folder): ")
NEVER_UNPICKLES = "Slimforge never unpickles uploads"
PT2_REFUSED = "the torch.export archive is refused: "


class CreatesMarker:
    """Unpickling this calls open(marker, "w"): the marker file is the proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def rewrite_zip(source: Path, target: Path, change) -> Path:
    """Copy an archive, passing each member through change(name, data) -> bytes | None (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


def edit_program(source: Path, target: Path, edit) -> Path:
    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        program = json.loads(data)
        edit(program)
        return json.dumps(program).encode()

    return rewrite_zip(source, target, change)


def replace_expressions(node, text: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr_str":
                node[key] = text
            else:
                replace_expressions(value, text)
    elif isinstance(node, list):
        for value in node:
            replace_expressions(value, text)


def first_weight_pickled(name: str, data: bytes) -> bytes:
    """Flag the first weight use_pickle and point it at weight_evil, as torch does for tensor subclasses."""
    if not name.endswith("data/weights/model_weights_config.json"):
        return data
    config = json.loads(data)
    first = next(iter(config["config"].values()))
    first["use_pickle"], first["path_name"] = True, "weight_evil"
    return json.dumps(config).encode()


class MakesZeros(torch.nn.Module):
    """Its exported graph has an aten.zeros node of 16 bytes: the place a hostile edit puts aten.from_file."""

    def forward(self, x):
        return x + torch.zeros(16, dtype=torch.uint8).float()


def file_reading_pt2(folder: Path, secret: Path, name: str, target: str = "torch.ops.aten.from_file.default",
                     escape: bool = False) -> Path:
    """A .pt2 whose graph calls `target` with the secret's path where a zeros node was: with aten.from_file, bare
    torch.export.load runs it and the model's output is the secret's first 16 bytes. `escape` spells the target
    with JSON escapes, so that the archive's raw text never holds the operator's name."""
    clean = folder / "makes_zeros.pt2"
    if not clean.exists():
        torch.export.save(torch.export.export(MakesZeros(), (torch.zeros(16),)), str(clean))

    def change(member, data):
        if not member.endswith("models/model.json"):
            return data
        program = json.loads(data)
        for node in program["graph_module"]["graph"]["nodes"]:
            if node["target"] == "torch.ops.aten.zeros.default":
                node["target"] = "@TARGET@"
                node["inputs"] = [{"name": "filename", "arg": {"as_string": str(secret)}, "kind": 1},
                                  {"name": "shared", "arg": {"as_bool": False}, "kind": 1},
                                  {"name": "size", "arg": {"as_int": 16}, "kind": 1},
                                  *(item for item in node["inputs"] if item["name"] != "size")]
        spelled = "".join(f"\\u{ord(char):04x}" for char in target) if escape else target
        return json.dumps(program).replace("@TARGET@", spelled).encode()

    return rewrite_zip(clean, folder / name, change)


class WritesAFile(torch.nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        torch.save(x, self.path)
        return x


def build_cases(folder: Path, marker: Path, dynamic_pt2: Path) -> dict[str, tuple[Path, dict, str]]:
    """{case: (file, extra spec keys, what the error must contain)}."""
    evil = pickle.dumps(CreatesMarker(marker), protocol=2)
    buffer = io.BytesIO()
    torch.save(CreatesMarker(marker), buffer)
    evil_zip = buffer.getvalue()
    code = f"open('{marker}', 'w')"
    files = {}

    def write(name: str, data: bytes) -> Path:
        files[name] = folder / name
        files[name].write_bytes(data)
        return files[name]

    scripted, exported = folder / "mlp.pt", folder / "mlp.pt2"
    torch.jit.save(torch.jit.script(build(MLP)), str(scripted))
    torch.export.save(torch.export.export(build(MLP), (torch.randn(MLP_INPUT),)), str(exported))
    root = zipfile.ZipFile(exported).namelist()[0].split("/")[0]
    scripted_root = zipfile.ZipFile(scripted).namelist()[0].split("/")[0]
    linear_onnx = onnx_files.linear_onnx(folder / "linear.onnx")
    weight, _ = onnx_files._weights()
    (folder / "secret.bin").write_bytes(bytes(48))  # what a hostile ONNX file would point onnxruntime at
    external_onnx = onnx_files.save(onnx_files.model_of(onnx_files.linear_graph(
        onnx_files.external(weight, "secret.bin"))), folder / "external.onnx")
    weights = folder / "weights.safetensors"
    safetensors.torch.save_file(build_model("mlp", {"in_features": 256}).state_dict(), str(weights))
    lying_header = b'{"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}'
    return {
        "raw pickle": (write("evil.pkl", evil), {}, NOT_A_MODEL + "it is a Python pickle"),
        "raw pickle named .pt": (write("evil.pt", evil), {}, NEVER_UNPICKLES),
        "torch.save zip": (write("checkpoint.pt", evil_zip), {}, NOT_A_MODEL + "it is a torch.save checkpoint"),
        "legacy torch.save": (_legacy_save(folder / "legacy.pt", CreatesMarker(marker)), {}, NEVER_UNPICKLES),
        "TorchScript with a hostile data.pkl": (
            rewrite_zip(scripted, folder / "hostile_ts.pt",
                        lambda name, data: evil if name.endswith("/data.pkl") else data),
            {}, "cannot load the torchscript model: "),
        ".pt2 with hostile sample inputs": (
            rewrite_zip(exported, folder / "inputs.pt2",
                        lambda name, data: evil_zip if name.endswith("sample_inputs/model.pt") else data),
            {}, PT2_REFUSED + "data/sample_inputs/model.pt holds pickled objects beyond plain tensors "
                              f"(it names {open.__module__}.open)"),
        ".pt2 with a pickled weight": (
            _with_member(rewrite_zip(exported, folder / "w0.pt2", first_weight_pickled), folder / "weight.pt2",
                         f"{root}/data/weights/weight_evil", evil_zip),
            {}, "is stored as a pickled Python object"),
        ".pt2 with a hostile size expression": (
            edit_program(dynamic_pt2, folder / "expr.pt2", lambda program: replace_expressions(program, code)),
            {"input_shape": [1, 3, 32, 32]},
            PT2_REFUSED + "models/model.json carries a size expression or shape guard"),
        ".pt2 with hostile shape guards": (
            edit_program(exported, folder / "guards.pt2", lambda program: program.update(guards_code=[code])),
            {}, "with a call of 'open', which torch would run as Python code"),
        ".pt2 with an AOTInductor library": (
            _with_member(exported, folder / "aoti.pt2", f"{root}/data/aotinductor/model/model.so", b"\x7fELF"),
            {}, PT2_REFUSED + "it contains AOTInductor-compiled native code"),
        ".pt2 with a duplicated member": (
            _with_member(exported, folder / "twice.pt2", f"{root}/models/model.json", b"{}"),
            {}, PT2_REFUSED + "it holds two members under the same name"),
        ".pt2 with members differing only in case": (
            _with_member(exported, folder / "case.pt2", f"{root}/MODELS/model.json", b"{}"),
            {}, NOT_A_MODEL + "the zip archive holds two members whose names differ only in case"),
        "TorchScript with members differing only in case": (
            _with_member(scripted, folder / "case_ts.pt", f"{scripted_root}/CONSTANTS.PKL", evil),
            {}, NOT_A_MODEL + "the zip archive holds two members whose names differ only in case"),
        ".pt2 with a pickle under another name": (
            _with_member(exported, folder / "hidden.pt2", f"{root}/data/extra/readme.txt", evil_zip),
            {}, PT2_REFUSED + "data/extra/readme.txt holds pickled objects beyond plain tensors "
                              f"(it names {open.__module__}.open)"),
        ".pt2 with a raw pickle under another name": (
            _with_member(exported, folder / "hidden_raw.pt2", f"{root}/extra.json", evil),
            {}, PT2_REFUSED + "extra.json holds pickled objects beyond plain tensors"),
        ".pt2 whose graph reads a file": (
            file_reading_pt2(folder, marker, "from_file.pt2"), {"input_shape": [16]},
            "calls aten::from_file reads a file of the worker's"),
        ".pt2 whose file-reading op is spelled in JSON escapes": (
            file_reading_pt2(folder, marker, "escaped.pt2", escape=True), {"input_shape": [16]},
            "calls aten::from_file reads a file of the worker's"),
        ".pt2 whose graph calls a Python function": (
            file_reading_pt2(folder, marker, "python_call.pt2", target="torch.serialization.os.system"),
            {"input_shape": [16]}, "calls 'torch.serialization.os.system', which is not an operator"),
        ".pt2 calling an operator of another namespace": (
            file_reading_pt2(folder, marker, "c10d.pt2", target="torch.ops.c10d.barrier.default"),
            {"input_shape": [16]}, "calls c10d::barrier is outside the tensor-math operators"),
        "TorchScript that writes a file": (
            _scripted(WritesAFile(str(marker)), folder / "writes.pt"), {}, "calls save, which writes a file"),
        ".pt2 with a second root folder": (
            _with_member(exported, folder / "roots.pt2", "other/models/model.json", b"{}"),
            {}, PT2_REFUSED + "its members are not all inside one folder"),
        ".pt2 in the old layout with a hostile pickle": (
            _old_layout(folder / "old.pt2", evil_zip), {}, PT2_REFUSED + "serialized_state_dict.pt holds pickled"),
        "truncated archive": (write("half.pt", scripted.read_bytes()[:2000]), {},
                              NOT_A_MODEL + "the zip archive is truncated or corrupt"),
        "empty file": (write("empty.pt", b""), {}, NOT_A_MODEL + "the file is empty"),
        "PNG renamed .pt": (write("cat.pt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)), {},
                            NOT_A_MODEL + "it looks like a PNG image"),
        "ONNX with external data": (external_onnx, {"input_shape": [1, 4]}, EXTERNAL_DATA_REFUSED),
        "truncated ONNX": (write("half.onnx", linear_onnx.read_bytes()[:60]), {"input_shape": [1, 4]},
                           "not a valid ONNX model: "),
        "random bytes": (write("noise.bin", b"\x00" + random.Random(7).randbytes(3000)), {},
                         NOT_A_MODEL + "its content matches none of them"),
        "safetensors without an architecture": (weights, {}, "a safetensors file holds weights only"),
        "safetensors with a lying header": (
            write("lying.safetensors", len(lying_header).to_bytes(8, "little") + lying_header + bytes(16)),
            {"architecture": {"name": "mlp", "config": {"in_features": 256}}}, "not a valid safetensors file: "),
    }


def _scripted(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def _legacy_save(path: Path, value) -> Path:
    torch.save(value, path, _use_new_zipfile_serialization=False)
    return path


def _old_layout(path: Path, state_dict: bytes) -> Path:
    """The layout torch.export.save wrote before the pt2 archive: top-level members, pickled state dict."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("serialized_exported_program.json", "{}")
        archive.writestr("serialized_state_dict.pt", state_dict)
        archive.writestr("serialized_constants.pt", b"")
        archive.writestr("serialized_example_inputs.pt", b"")
        archive.writestr("version", "8.0")
    return path


def _with_member(source: Path, target: Path, name: str, data: bytes) -> Path:
    rewrite_zip(source, target, lambda member, content: content)
    with zipfile.ZipFile(target, "a") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose, for one case
        archive.writestr(name, data)
    return target
