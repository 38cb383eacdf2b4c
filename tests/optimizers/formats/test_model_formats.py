import io
import logging
import pickle
import random
import zipfile

import pytest
import safetensors.torch
import torch

from optimizers.errors import ModelFileError
from optimizers.formats import model_io as formats
from optimizers.formats.model_io import EXPORT, ONNX, SAFETENSORS, TORCHSCRIPT, detect_format, extension, load_model
from optimizers.formats.onnx_model import OnnxModel
from optimizers.zoo.models import build_model
from tests.optimizers.models import MLP, MLP_INPUT, build
from tests.optimizers.onnx_files import linear_onnx

NOT_A_MODEL = ("not a model file Slimforge reads (TorchScript, torch.export, ONNX, safetensors, or a zipped "
               "Hugging Face folder): ")
NEVER_UNPICKLES = "Slimforge never unpickles uploads; save the model with torch.jit.save or torch.export.save"
ZOO_MLP = {"name": "mlp", "config": {"in_features": 16, "hidden": [32], "num_classes": 3}}


@pytest.fixture(scope="module")
def zoo_mlp_safetensors(tmp_path_factory):
    path = tmp_path_factory.mktemp("formats") / "weights.safetensors"
    torch.manual_seed(0)
    model = build_model(ZOO_MLP["name"], ZOO_MLP["config"])
    safetensors.torch.save_file(model.state_dict(), str(path))
    return path, model


def test_detects_torchscript(mlp_pt):
    assert detect_format(mlp_pt) == TORCHSCRIPT


def test_detects_torch_export(mlp_pt2):
    assert detect_format(mlp_pt2) == EXPORT


def test_detects_onnx(tmp_path):
    path = linear_onnx(tmp_path / "linear.onnx")
    assert detect_format(path) == ONNX


def test_detects_safetensors(zoo_mlp_safetensors):
    assert detect_format(zoo_mlp_safetensors[0]) == SAFETENSORS


def test_detection_ignores_the_file_name(mlp_pt2, tmp_path):
    renamed = tmp_path / "upload-7f3a"
    renamed.write_bytes(mlp_pt2.read_bytes())
    assert detect_format(renamed) == EXPORT


def detect_error(path) -> str:
    with pytest.raises(ModelFileError) as caught:
        detect_format(path)
    return str(caught.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert detect_error(path) == NOT_A_MODEL + "the file is empty"


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(b"\x00" + random.Random(0).randbytes(4096))
    assert detect_error(path) == NOT_A_MODEL + "its content matches none of them"


@pytest.mark.parametrize("head, what", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"), (b"\xff\xd8\xff\xe0", "a JPEG image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras model?)"),
])
def test_other_kinds_of_file_are_named(tmp_path, head, what):
    path = tmp_path / "model.pt"
    path.write_bytes(head + bytes(200))
    assert detect_error(path) == NOT_A_MODEL + "it looks like " + what


@pytest.mark.parametrize("fixture", ["mlp_pt", "mlp_pt2"])
def test_truncated_archive(fixture, request, tmp_path):
    whole = request.getfixturevalue(fixture).read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(whole[: len(whole) // 2])
    assert detect_error(path) == NOT_A_MODEL + "the zip archive is truncated or corrupt"


def test_zip_of_text_files(tmp_path):
    path = tmp_path / "notes.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
        archive.writestr("todo.txt", "nothing")
    assert detect_error(path) == NOT_A_MODEL + "a zip archive without a model inside"


def test_torch_save_checkpoint_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(build(MLP).state_dict(), path)
    message = detect_error(path)
    assert message.startswith(NOT_A_MODEL + "it is a torch.save checkpoint")
    assert NEVER_UNPICKLES in message


@pytest.mark.parametrize("write", [
    lambda path: path.write_bytes(pickle.dumps({"w": [1.0]}, protocol=4)),
    lambda path: torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False),
])
def test_plain_and_legacy_pickles_are_refused(tmp_path, write):
    path = tmp_path / "model.pt"
    write(path)
    message = detect_error(path)
    assert message.startswith(NOT_A_MODEL + "it is a Python pickle")
    assert NEVER_UNPICKLES in message


def test_missing_file(tmp_path):
    assert detect_error(tmp_path / "nope.pt").startswith("cannot read the model file: ")


def test_corrupt_member_inside_a_valid_zip_is_a_model_file_error(mlp_pt, tmp_path):
    path = tmp_path / "broken.pt"
    with zipfile.ZipFile(mlp_pt) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"garbage" if name.endswith("data.pkl") else source.read(name))
    assert detect_format(path) == TORCHSCRIPT
    with pytest.raises(ModelFileError, match=r"^cannot load the torchscript model: \S"):
        load_model(path)


def test_load_model_returns_an_inference_ready_module(mlp_pt, mlp_pt2):
    example = torch.randn(MLP_INPUT)
    expected = build(MLP)(example)
    for path, fmt in [(mlp_pt, TORCHSCRIPT), (mlp_pt2, EXPORT)]:
        module, detected = load_model(path)
        assert detected == fmt
        torch.testing.assert_close(module(example), expected)


def test_load_onnx_returns_an_onnx_model(tmp_path):
    model, fmt = load_model(linear_onnx(tmp_path / "linear.onnx"))
    assert fmt == ONNX and isinstance(model, OnnxModel)
    torch.testing.assert_close(model(torch.ones(2, 4)), torch.tensor([[19.0, 23.0, 27.0]] * 2))


def test_load_safetensors_builds_the_architecture(zoo_mlp_safetensors):
    path, original = zoo_mlp_safetensors
    model, fmt = load_model(path, ZOO_MLP)
    assert fmt == SAFETENSORS and not model.training
    example = torch.randn(2, 16)
    torch.testing.assert_close(model(example), original(example))


def test_safetensors_without_an_architecture_is_a_clear_error(zoo_mlp_safetensors):
    with pytest.raises(ModelFileError, match="^a safetensors file holds weights only: choose the model's architecture"):
        load_model(zoo_mlp_safetensors[0])


def test_safetensors_with_the_wrong_architecture_names_the_mismatch(zoo_mlp_safetensors):
    wrong = {"name": "mlp", "config": {"in_features": 8, "hidden": [32], "num_classes": 3}}
    with pytest.raises(ModelFileError, match="do not fit the mlp architecture"):
        load_model(zoo_mlp_safetensors[0], wrong)


def test_safetensors_header_is_checked_at_detection(tmp_path):
    path = tmp_path / "lying.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    assert detect_error(path).startswith("not a valid safetensors file: ")


def test_load_export_without_pt2_suffix_does_not_warn(mlp_pt2, tmp_path, caplog):
    renamed = tmp_path / "upload-1234"
    renamed.write_bytes(mlp_pt2.read_bytes())
    with caplog.at_level(logging.WARNING):
        load_model(renamed)
    assert not [record for record in caplog.records if ".pt2" in record.getMessage()]


def test_save_model_traces_a_plain_module_for_torchscript(tmp_path):
    path = tmp_path / "traced.pt"
    assert formats.save_model(build(MLP), path, TORCHSCRIPT, torch.randn(MLP_INPUT)) == []
    assert detect_format(path) == TORCHSCRIPT
    assert isinstance(torch.jit.load(str(path)), torch.jit.ScriptModule)


def test_save_model_exports_a_plain_module(tmp_path):
    path = tmp_path / "exported.pt2"
    assert formats.save_model(build(MLP), path, EXPORT, torch.randn(MLP_INPUT)) == []
    assert detect_format(path) == EXPORT


def test_save_model_points_other_formats_to_the_exporters(tmp_path):
    with pytest.raises(ValueError, match="use optimizers.formats.save_all"):
        formats.save_model(build(MLP), tmp_path / "m.onnx", ONNX, torch.randn(MLP_INPUT))


def test_extensions():
    assert [extension(fmt) for fmt in (TORCHSCRIPT, EXPORT, ONNX, SAFETENSORS)] == [
        ".pt", ".pt2", ".onnx", ".safetensors"]
    with pytest.raises(ValueError, match="unknown model format 'keras'"):
        extension("keras")


def test_detection_reads_a_torch_save_checkpoint_without_unpickling(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("detect_format must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(1)}, buffer)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(buffer.getvalue())
    assert "torch.save checkpoint" in detect_error(path)
