"""Red team, through the archive: operators that reach outside the model, however they are spelled, and ONNX
files that point at other files.

Each attack is first shown to work against bare torch (the canary comes back), then refused by
`optimizers.formats.model_io.load_model` naming the operator; the checks before loading and the walk of
the loaded graph are each shown to refuse on their own, so that one layer failing leaves the other.
"""
import zipfile

import numpy as np
import onnxruntime
import pytest
import torch

from optimizers.errors import ModelFileError
from optimizers.formats import export_checks, model_io, operators, torchscript_checks
from optimizers.formats.model_io import load_model
from optimizers.formats.onnx_checks import EXTERNAL_DATA_REFUSED
from optimizers.formats.operators import check_torchscript_module, refusal
from tests.optimizers import onnx_files
from tests.optimizers.hostile_files import WritesAFile, file_reading_pt2, rewrite_zip

CANARY = b"slimforge-canary"  # 16 bytes: what aten::from_file reads back


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(CANARY)
    return path


def _bytes_of(output: torch.Tensor) -> bytes:
    return bytes(int(value) for value in output.flatten())


def test_a_file_reading_op_in_a_pt2_graph_leaks_a_file_from_bare_torch(tmp_path, secret):
    path = file_reading_pt2(tmp_path, secret, "from_file.pt2")
    with open(path, "rb") as file:
        leaked = torch.export.load(file).module()(torch.zeros(16))
    assert _bytes_of(leaked) == CANARY  # the attack is real: the file's bytes are the model's output


@pytest.mark.parametrize("escape", [False, True], ids=["plain", "spelled-in-json-escapes"])
def test_slimforge_refuses_it_before_loading(tmp_path, secret, escape):
    path = file_reading_pt2(tmp_path, secret, "from_file.pt2", escape=escape)
    assert (b"from_file" in path.read_bytes()) is not escape  # escaped, no text scan would see the name
    with pytest.raises(ModelFileError, match=r"aten::from_file reads a file of the worker's"):
        load_model(path)


def test_the_walk_of_the_loaded_graph_refuses_it_alone(tmp_path, secret, monkeypatch):
    monkeypatch.setattr(export_checks, "check_exported_targets", lambda targets, where: list(targets))
    with pytest.raises(ModelFileError, match=r"exported graph \(forward\) calls aten::from_file"):
        load_model(file_reading_pt2(tmp_path, secret, "from_file.pt2", escape=True))


@pytest.mark.parametrize(("target", "named"), [
    ("torch.serialization.os.system", "'torch.serialization.os.system', which is not an operator"),
    ("torch.save", "'torch.save', which is not an operator"),
    ("torch.ops.aten.add.__init__", "'torch.ops.aten.add.__init__', which is not an operator"),
    ("torch.ops.c10d.barrier.default", "c10d::barrier is outside the tensor-math operators"),
    ("torch.ops.higher_order.aoti_call_delegate", "the higher-order operator"),
    ("torch.ops.aten.save.default", "aten::save writes a file on the worker"),
])
def test_graph_targets_torch_would_resolve_to_anything_are_refused(tmp_path, secret, target, named):
    with pytest.raises(ModelFileError, match="calls " + named.replace("(", r"\(").replace(".", r"\.")):
        load_model(file_reading_pt2(tmp_path, secret, "target.pt2", target=target))


def test_torchscript_that_writes_a_file_runs_on_bare_torch_and_is_refused(tmp_path):
    canary = tmp_path / "written"
    path = tmp_path / "writes.pt"
    torch.jit.save(torch.jit.script(WritesAFile(str(canary))), str(path))
    torch.jit.load(str(path))(torch.ones(2))
    assert canary.exists()  # the attack is real
    canary.unlink()
    with pytest.raises(ModelFileError, match=r"TorchScript code \(.*\) calls save, which writes a file"):
        load_model(path)
    assert not canary.exists()


def test_the_walk_of_the_compiled_torchscript_refuses_it_alone(tmp_path):
    scripted = torch.jit.script(WritesAFile(str(tmp_path / "written")))
    with pytest.raises(ModelFileError, match=r"TorchScript method forward calls aten::save writes a file"):
        check_torchscript_module(scripted)


def _is_code(name: str) -> bool:
    return "/code/" in name and name.endswith(".py")


def _with_forward(tmp_path, body: str):
    """A scripted model whose code file has `return torch.add(x, 1)` replaced by `body`, as an attacker edits it."""
    class AddsOne(torch.nn.Module):
        def forward(self, x):
            return x + 1

    clean = tmp_path / "clean.pt"
    torch.jit.save(torch.jit.script(AddsOne()), str(clean))

    def change(name, data):
        edited = data.replace(b"torch.add(x, 1)", body.encode())
        assert edited != data or not _is_code(name), "the scripted code changed shape; update the test"
        return edited if _is_code(name) else data

    return rewrite_zip(clean, tmp_path / "edited.pt", change)


@pytest.mark.parametrize("body", [
    'torch.add(x, float(torch.sum(getattr(torch, "from_" + "file")("{secret}", False, 16))))',
    'torch.add(x, float(torch.sum(getattr(torch.ops.aten, "from_file")("{secret}", False, 16))))',
    'torch.add(x, float(torch.sum(ops.c10d.barrier())))',
    'torch.add(x, float(torch.sum(torch.\\\n from_file("{secret}", False, 16))))',
])
def test_op_names_built_from_pieces_never_load(tmp_path, secret, body, monkeypatch):
    path = _with_forward(tmp_path, body.format(secret=secret))
    with pytest.raises(ModelFileError):
        load_model(path)
    # Without the check before loading, TorchScript itself cannot compile a name it is not given literally.
    monkeypatch.setattr(torchscript_checks, "check_torchscript_code", lambda code, member: None)
    with pytest.raises(ModelFileError) as caught:
        model, _ = load_model(path)
        model(torch.zeros(16))
    assert CANARY.decode() not in str(caught.value)


def test_a_code_member_in_another_case_is_still_checked(tmp_path, secret):
    path = _with_forward(tmp_path, f'torch.add(x, float(torch.sum(torch.from_file("{secret}", False, 16))))')
    renamed = tmp_path / "cased.pt"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(renamed, "w") as new:
        for name in old.namelist():
            new.writestr(name[:-3] + ".PY" if _is_code(name) else name, old.read(name))
    with pytest.raises(ModelFileError, match="calls from_file"):
        model_io.load_model(renamed)


def test_every_file_touching_operator_torch_registers_is_refused():
    """A new torch release adding such an operator to an allowed namespace fails here, not in production."""
    touches_files = [schema.name for schema in torch._C._jit_get_all_schemas()
                     if any(argument.name in ("filename", "path", "file", "library") and "str" in str(argument.type)
                            for argument in schema.arguments)]
    assert touches_files, "the registry no longer names file arguments this way; revisit this test"
    assert {name: refusal(name) for name in touches_files if refusal(name) is None} == {}
    assert refusal("aten::add") is None and refusal("aten::conv2d") is None and refusal("quantized::linear") is None
    assert operators.serialized_target_refusal("torch.ops.aten.add.Tensor") is None


@pytest.mark.parametrize("in_a_branch", [False, True], ids=["initializer", "inside-an-if-branch"])
def test_onnx_external_data_leaks_a_file_through_bare_onnxruntime_and_is_refused(tmp_path, in_a_branch):
    # 48 bytes next to the upload, as another user's file might be: the weight's 12 floats come from it.
    secret = np.arange(100, 112, dtype=np.float32)
    (tmp_path / "neighbour.bin").write_bytes(secret.tobytes())
    weight, _ = onnx_files._weights()
    path = (onnx_files.if_with_external_branch(tmp_path / "branch.onnx") if in_a_branch else
            onnx_files.save(onnx_files.model_of(onnx_files.linear_graph(onnx_files.external(weight, "neighbour.bin"))),
                            tmp_path / "external.onnx"))
    if not in_a_branch:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (leaked,) = session.run(None, {"x": np.eye(4, dtype=np.float32)})
        assert np.array_equal(leaked - 1, secret.reshape(4, 3))  # the attack is real: the file is the output
    with pytest.raises(ModelFileError, match=EXTERNAL_DATA_REFUSED):
        load_model(path)


@pytest.mark.parametrize("where", ["code", "pickle"])
def test_custom_classes_beyond_tensor_math_are_refused(tmp_path, where):
    """torchbind classes run native code in their constructors and, while loading, in __setstate__."""
    if where == "code":
        path = _with_forward(tmp_path, "torch.add(x, float(len(torch.classes.dist_rpc.WorkerInfo(\"a\", 0).name)))")
    else:
        clean = _with_forward(tmp_path, "torch.add(x, 2)")
        path = rewrite_zip(clean, tmp_path / "pickled.pt", lambda name, data: data + b"__torch__.torch.classes.profiler"
                           if name.endswith("data.pkl") else data)
    with pytest.raises(ModelFileError, match="a custom class of the namespace '(dist_rpc|profiler)'"):
        load_model(path)


@pytest.mark.parametrize("target", ["torch.ops.aten.__and__.Tensor", "torch.ops.aten.__or__.Tensor"])
def test_aten_operators_named_by_a_dunder_are_tensor_math(target):
    assert operators.serialized_target_refusal(target) is None  # transformers combines attention masks with them


@pytest.mark.parametrize("target", ["torch.ops.aten.__class__.__init__", "torch.ops.__dict__.x.y",
                                    "torch.ops.aten.add.__call__", "torch.ops.aten.__getattribute__.x"])
def test_any_other_dunder_in_a_target_is_refused(target):
    assert "which is not an operator" in operators.serialized_target_refusal(target)
