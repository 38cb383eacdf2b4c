import logging
import os
import zipfile

import pytest
import torch

from optimizers.errors import ModelFileError
from optimizers.formats import EXPORT, TORCHSCRIPT, detect_format, extension, load_model, save_model
from tests.optimizers.models import MLP, MLP_INPUT, build

NOT_A_MODEL = "not a TorchScript or torch.export archive: "


def test_detects_torchscript(mlp_pt):
    assert detect_format(mlp_pt) == TORCHSCRIPT


def test_detects_torch_export(mlp_pt2):
    assert detect_format(mlp_pt2) == EXPORT


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
    path.write_bytes(os.urandom(4096))
    assert detect_error(path) == NOT_A_MODEL + "not a zip archive"


def test_png_renamed_to_pt(tmp_path):
    path = tmp_path / "cat.pt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(200))
    assert detect_error(path) == NOT_A_MODEL + "not a zip archive"


@pytest.mark.parametrize("fixture", ["mlp_pt", "mlp_pt2"])
def test_truncated_archive(fixture, request, tmp_path):
    whole = request.getfixturevalue(fixture).read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(whole[: len(whole) // 2])
    assert detect_error(path) == NOT_A_MODEL + "the archive is truncated or corrupt"


def test_zip_of_text_files(tmp_path):
    path = tmp_path / "notes.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
        archive.writestr("todo.txt", "nothing")
    assert detect_error(path) == NOT_A_MODEL + "a zip archive without a model inside"


def test_torch_save_checkpoint_gets_a_hint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(build(MLP).state_dict(), path)
    message = detect_error(path)
    assert message.startswith(NOT_A_MODEL + "it looks like a torch.save checkpoint")
    assert "torch.jit.save or torch.export.save" in message


def test_missing_file(tmp_path):
    assert "cannot read the model file" in detect_error(tmp_path / "nope.pt")


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


def test_load_export_without_pt2_suffix_does_not_warn(mlp_pt2, tmp_path, caplog):
    renamed = tmp_path / "upload-1234"
    renamed.write_bytes(mlp_pt2.read_bytes())
    with caplog.at_level(logging.WARNING):
        load_model(renamed)
    assert not [record for record in caplog.records if ".pt2" in record.getMessage()]


def test_save_model_traces_a_plain_module_for_torchscript(tmp_path):
    path = tmp_path / "traced.pt"
    assert save_model(build(MLP), path, TORCHSCRIPT, torch.randn(MLP_INPUT)) == []
    assert detect_format(path) == TORCHSCRIPT
    assert isinstance(torch.jit.load(str(path)), torch.jit.ScriptModule)


def test_save_model_exports_a_plain_module(tmp_path):
    path = tmp_path / "exported.pt2"
    assert save_model(build(MLP), path, EXPORT, torch.randn(MLP_INPUT)) == []
    assert detect_format(path) == EXPORT


def test_save_model_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown model format 'onnx'"):
        save_model(build(MLP), tmp_path / "m.onnx", "onnx", torch.randn(MLP_INPUT))


def test_extensions():
    assert (extension(TORCHSCRIPT), extension(EXPORT)) == (".pt", ".pt2")
