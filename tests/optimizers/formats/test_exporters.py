"""save_all_formats: which model kinds give which downloads, and that each download reads back the same."""

import warnings

import pytest
import torch
from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit

from optimizers.errors import RecipeError
from optimizers.formats import save_all as exporters
from optimizers.formats import writers as format_writers
from optimizers.formats.model_io import EXPORT, ONNX, SAFETENSORS, TORCHSCRIPT, load_model
from optimizers.formats.onnx_model import OnnxModel
from optimizers.formats.save_all import SavedModels, save_all_formats
from optimizers.zoo.models import build_model
from tests.optimizers.models import MLP, MLP_INPUT, SmallCNN, TokenClassifier, build

NO_ARCHITECTURE = "safetensors holds weights only; it is written for models built from a named architecture"
NOT_EXPORTABLE = "torch.export cannot take a TorchScript module"
ZOO_CNN = {"name": "small_cnn", "config": {"channels": [4, 8]}}
FILES = {TORCHSCRIPT: "model.pt", EXPORT: "model.pt2", ONNX: "model.onnx", SAFETENSORS: "model.safetensors"}


def save(module, out_dir, example, primary, architecture=None) -> SavedModels:
    saved = save_all_formats(module, out_dir, example, primary=primary, architecture=architecture)
    # Only finished files, under their fixed names: no partial or side files (external data) left behind.
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(saved.files.values())
    assert set(saved.files) | set(saved.skipped) == set(FILES)
    assert all(saved.files[fmt] == FILES[fmt] for fmt in saved.files)
    return saved


def assert_reads_back(out_dir, saved, example, expected, architecture=None):
    for fmt, name in saved.files.items():
        model, detected = load_model(out_dir / name, architecture)
        assert detected == fmt
        with torch.no_grad():
            torch.testing.assert_close(model(example), expected, rtol=1e-4, atol=1e-5, msg=f"{fmt} differs")


def test_an_eager_module_gives_every_format_but_safetensors(tmp_path):
    module, example = build(MLP), torch.randn(MLP_INPUT)
    saved = save(module, tmp_path, example, TORCHSCRIPT)
    assert sorted(saved.files) == [EXPORT, ONNX, TORCHSCRIPT]
    assert saved.skipped == {SAFETENSORS: NO_ARCHITECTURE}
    assert any("traced with an input of shape [1,256]" in note for note in saved.notes)
    with torch.no_grad():
        assert_reads_back(tmp_path, saved, example, module(example))
        # The batch stays free in the .pt2 and the ONNX file, though the example had one row.
        batch = torch.randn(5, 256)
        for name in ("model.pt2", "model.onnx"):
            torch.testing.assert_close(load_model(tmp_path / name)[0](batch), module(batch), rtol=1e-4, atol=1e-5)


def test_a_zoo_model_with_its_architecture_gives_all_four(tmp_path):
    torch.manual_seed(0)
    module = build_model(ZOO_CNN["name"], ZOO_CNN["config"])
    example = torch.randn(1, 1, 8, 8)
    saved = save(module, tmp_path, example, SAFETENSORS, ZOO_CNN)
    assert sorted(saved.files) == [EXPORT, ONNX, SAFETENSORS, TORCHSCRIPT] and saved.skipped == {}
    with torch.no_grad():
        assert_reads_back(tmp_path, saved, example, module(example), ZOO_CNN)


def test_a_torchscript_module_gives_torchscript_and_onnx(tmp_path):
    module, example = torch.jit.script(build(MLP)), torch.randn(MLP_INPUT)
    saved = save(module, tmp_path, example, TORCHSCRIPT)
    assert sorted(saved.files) == [ONNX, TORCHSCRIPT]
    assert saved.skipped == {EXPORT: NOT_EXPORTABLE, SAFETENSORS: NO_ARCHITECTURE}
    assert saved.notes == ["model.onnx takes inputs of shape [1,256] only (exported from TorchScript)"]
    with torch.no_grad():
        assert_reads_back(tmp_path, saved, example, module(example))


def test_a_torchscript_quantized_module_gives_torchscript_only(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = quantize_dynamic_jit(torch.jit.script(build(MLP)), {"": default_dynamic_qconfig})
    saved = save(module, tmp_path, torch.randn(MLP_INPUT), TORCHSCRIPT, architecture={"name": "mlp", "config": {}})
    assert list(saved.files) == [TORCHSCRIPT]
    assert saved.skipped[EXPORT] == NOT_EXPORTABLE
    assert saved.skipped[ONNX].startswith("a TorchScript-quantized module cannot be exported to ONNX")
    assert "not plain tensors" in saved.skipped[SAFETENSORS]


def test_an_exported_graph_module_keeps_its_dynamic_batch_in_every_format(tmp_path, cnn_pt2_dynamic_batch):
    module, _ = load_model(cnn_pt2_dynamic_batch)
    example = torch.randn(1, 3, 32, 32)
    saved = save(module, tmp_path, example, EXPORT)
    assert sorted(saved.files) == [EXPORT, ONNX, TORCHSCRIPT]
    assert saved.skipped == {SAFETENSORS: NO_ARCHITECTURE} and saved.notes == []
    reference = build(SmallCNN)
    with torch.no_grad():
        assert_reads_back(tmp_path, saved, example, reference(example))
        batch = torch.randn(3, 3, 32, 32)
        for name in saved.files.values():
            torch.testing.assert_close(load_model(tmp_path / name)[0](batch), reference(batch), rtol=1e-4, atol=1e-5)


def test_integer_inputs_and_tuple_outputs(tmp_path):
    module, example = build(TokenClassifier), torch.zeros(1, 7, dtype=torch.long)
    saved = save(module, tmp_path, example, EXPORT)
    assert sorted(saved.files) == [EXPORT, ONNX, TORCHSCRIPT]
    onnx_model, _ = load_model(tmp_path / "model.onnx")
    assert isinstance(onnx_model, OnnxModel)
    with torch.no_grad():
        for got, expected in zip(onnx_model(example), module(example), strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_an_onnx_model_is_copied_and_nothing_else(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    from tests.optimizers.onnx_files import linear_onnx

    model = OnnxModel(linear_onnx(source / "in.onnx"))
    out_dir = tmp_path / "out"
    saved = save(model, out_dir, torch.ones(1, 4), ONNX)
    assert list(saved.files) == [ONNX]
    assert (out_dir / "model.onnx").read_bytes() == (source / "in.onnx").read_bytes()
    assert saved.skipped[TORCHSCRIPT] == "an ONNX model cannot be converted back to TorchScript"


def test_the_primary_format_must_succeed(tmp_path):
    with pytest.raises(RecipeError, match=f"^the result cannot be saved as torch.export, the upload's format: "
                                          f"{NOT_EXPORTABLE}$"):
        save_all_formats(torch.jit.script(build(MLP)), tmp_path, torch.randn(MLP_INPUT), primary=EXPORT,
                         architecture=None)
    with pytest.raises(ValueError, match="unknown model format 'keras'"):
        save_all_formats(build(MLP), tmp_path, torch.randn(MLP_INPUT), primary="keras", architecture=None)


def test_bfloat16_inputs_skip_onnx(tmp_path):
    module = build(MLP).to(torch.bfloat16)
    saved = save(module, tmp_path, torch.randn(MLP_INPUT, dtype=torch.bfloat16), TORCHSCRIPT)
    assert sorted(saved.files) == [EXPORT, TORCHSCRIPT]
    assert "bfloat16" in saved.skipped[ONNX]


def test_a_file_that_reads_back_differently_is_dropped(tmp_path, monkeypatch):
    def write_another_model(model, path, example, program):
        torch.jit.save(torch.jit.trace(_Doubled(), example), str(path))
        return []

    monkeypatch.setitem(exporters._WRITERS, TORCHSCRIPT, write_another_model)
    saved = save(build(MLP), tmp_path, torch.randn(MLP_INPUT), EXPORT)
    assert TORCHSCRIPT not in saved.files
    assert saved.skipped[TORCHSCRIPT].startswith("the TorchScript file's outputs differ from the model's")


def test_an_exporter_crash_costs_one_format_only(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("exporter exploded\nwith a long story")

    monkeypatch.setattr(format_writers.torch.onnx, "export", crash)
    saved = save(build(MLP), tmp_path, torch.randn(MLP_INPUT), TORCHSCRIPT)
    assert saved.skipped[ONNX] == "writing ONNX failed: exporter exploded"
    assert sorted(saved.files) == [EXPORT, TORCHSCRIPT]


class _Doubled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = build(MLP)

    def forward(self, x):
        return self.inner(x) * 2


def test_a_model_left_training_is_saved_for_inference(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2)).train()
    saved = save(module, tmp_path, torch.randn(4, 8), TORCHSCRIPT)
    assert not module.training
    assert sorted(saved.files) == [EXPORT, ONNX, TORCHSCRIPT]  # dropout would have failed every read-back


def test_a_pt2_with_an_unbounded_dynamic_batch_is_re_exported_keeping_it(tmp_path):
    import io

    import torch

    from optimizers.formats.export_program import export_program

    module = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    program = torch.export.export(module, (torch.randn(2, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    again, _ = export_program(torch.export.load(buffer).module(), torch.randn(1, 8))
    assert again.module()(torch.randn(5, 8)).shape == (5, 4)  # the batch is still free, without an upper bound
