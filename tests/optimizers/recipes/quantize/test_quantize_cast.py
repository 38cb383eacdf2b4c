"""fp16 and bf16: half-size weights, float32 in and out, written in every format that can hold them."""
import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.formats.model_io import load_model
from optimizers.formats.save_all import save_all_formats
from optimizers.registry import get_recipe
from optimizers.reporters import NullReporter
from tests.optimizers.quantize_models import DigitsMLP, accuracy, digits, example, trained


def cast(model, variant):
    return get_recipe("quantize").run(model, None, QuantizeConfig(variant=variant), NullReporter())


@pytest.mark.parametrize("variant, dtype, tolerance", [("fp16", torch.float16, 0.005), ("bf16", torch.bfloat16, 0.05)])
def test_cast_stores_half_precision_weights_and_keeps_float32_at_the_boundary(variant, dtype, tolerance):
    model = trained(DigitsMLP)
    result = cast(model, variant)
    assert {parameter.dtype for parameter in result.model.parameters()} == {dtype}
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}  # the input is untouched
    inputs = digits().val_x[:64]
    with torch.no_grad():
        expected, got = model(inputs), result.model(inputs)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max() <= tolerance * expected.abs().max()
    assert accuracy(result.model) >= accuracy(model) - 0.01


def test_fp16_is_written_in_every_format_at_about_half_the_size(tmp_path):
    model = trained(DigitsMLP)
    result = cast(model, "fp16")
    saved = save_all_formats(result.model, tmp_path / "fp16", example(), primary="torchscript", architecture=None)
    original = save_all_formats(model, tmp_path / "fp32", example(), primary="torchscript", architecture=None)
    assert set(saved.files) == {"torchscript", "export", "onnx"}, saved.skipped
    for fmt, name in saved.files.items():
        ratio = (tmp_path / "fp16" / name).stat().st_size / (tmp_path / "fp32" / original.files[fmt]).stat().st_size
        assert ratio <= 0.55, (fmt, ratio)
    reloaded, _ = load_model(tmp_path / "fp16" / saved.files["onnx"])
    assert reloaded(example()).dtype == torch.float32  # ONNX too takes and returns float32


def test_bf16_of_a_torchscript_upload_stays_torchscript():
    scripted = torch.jit.script(trained(DigitsMLP))
    result = cast(scripted, "bf16")
    assert isinstance(result.model, torch.jit.ScriptModule) and result.primary_format is None
    assert result.model(digits().val_x[:4]).dtype == torch.float32
    assert {parameter.dtype for parameter in scripted.parameters()} == {torch.float32}


def test_cast_of_an_exported_program_leaves_the_shared_weights_alone():
    model = trained(DigitsMLP)
    graph = torch.export.export(model, (example(),)).module()  # shares its tensors with `model`
    result = cast(graph, "fp16")
    assert {parameter.dtype for parameter in graph.parameters()} == {torch.float32}
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    assert result.model(example()).dtype == torch.float32
