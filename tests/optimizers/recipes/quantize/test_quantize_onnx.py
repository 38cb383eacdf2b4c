"""ONNX uploads: onnxruntime int8 (dynamic, static) and float16; the quantized .onnx is the download."""
import functools
import tempfile
import warnings
from pathlib import Path

import onnx
import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.errors import RecipeError
from optimizers.formats.model_io import load_model
from optimizers.formats.save_all import save_all_formats
from optimizers.recipes.quantize.applies import quantize_applies
from optimizers.registry import get_recipe
from optimizers.reporters import NullReporter
from tests.optimizers.quantize_models import DigitsCNN, DigitsMLP, accuracy, digits, example, trained


@functools.cache
def exported_onnx(model_class) -> Path:
    path = Path(tempfile.mkdtemp(prefix="slimforge-quantize-onnx-")) / "model.onnx"
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(trained(model_class, epochs=2), (torch.rand(2, 1, 8, 8),), str(path), dynamo=True,
                          external_data=False, verbose=False, dynamic_shapes=({0: batch},))
    return path


def run(variant, model_class=DigitsMLP, data=None, **settings):
    model, _ = load_model(exported_onnx(model_class))
    return model, get_recipe("quantize").run(model, data, QuantizeConfig(variant=variant, **settings), NullReporter())


def ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_onnx_dynamic_int8_is_the_saved_file_and_at_most_035x(tmp_path):
    original, result = run("onnx_dynamic_int8")
    saved = save_all_formats(result.model, tmp_path, example(), primary="onnx", architecture=None)
    written = tmp_path / saved.files["onnx"]
    assert set(saved.files) == {"onnx"} and "MatMulInteger" in ops(written)
    assert written.stat().st_size <= 0.35 * Path(original.onnx_path).stat().st_size
    reloaded, _ = load_model(written)
    assert accuracy(reloaded) >= accuracy(original) - 0.01
    assert Path(original.onnx_path).exists() and "MatMulInteger" not in ops(original.onnx_path)  # input untouched


def test_onnx_static_int8_calibrates_on_the_dataset_and_quantizes_convolutions():
    original, result = run("onnx_static_int8", DigitsCNN, data=digits())
    written = Path(result.model.onnx_path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops(written)
    assert written.stat().st_size <= 0.35 * Path(original.onnx_path).stat().st_size
    assert accuracy(load_model(written)[0]) >= accuracy(original) - 0.01
    assert "QDQ" in result.backend and "calibrated on 256" in result.notes[0]


def test_onnx_static_int8_without_a_dataset_is_refused():
    with pytest.raises(RecipeError, match="onnx_static_int8 needs a dataset"):
        run("onnx_static_int8")


def test_onnx_fp16_halves_the_file_and_keeps_float32_inputs():
    original, result = run("fp16")
    assert Path(result.model.onnx_path).stat().st_size <= 0.55 * Path(original.onnx_path).stat().st_size
    reloaded, _ = load_model(result.model.onnx_path)  # onnx.checker passes: Slimforge accepts its own artifact
    assert reloaded(example()).dtype == torch.float32 and accuracy(reloaded) >= accuracy(original) - 0.01


def test_pytorch_variants_are_refused_for_onnx_with_the_onnx_ones_named():
    with pytest.raises(RecipeError, match="use onnx_dynamic_int8 or onnx_static_int8"):
        run("dynamic_int8")


def test_an_already_quantized_onnx_model_is_not_applicable():
    _, result = run("onnx_dynamic_int8")
    assert quantize_applies(result.model) == (False, "the ONNX model is already quantized")
    original, _ = load_model(exported_onnx(DigitsMLP))
    assert quantize_applies(original) == (True, "3 MatMul/Gemm layer(s) can be quantized")
