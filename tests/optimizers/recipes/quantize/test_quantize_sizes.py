"""Every int8 route really stores int8 weights: its saved file is at most 0.35x the fp32 file (Linear-heavy MLP)."""
import functools
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.formats.model_io import load_model, save_model
from optimizers.registry import get_recipe
from optimizers.reporters import NullReporter
from tests.optimizers.quantize_models import DigitsMLP, accuracy, digits, example, trained


@functools.cache
def upload(kind: str) -> Path:
    """The trained MLP saved as a user would upload it: TorchScript, torch.export (dynamic batch) or ONNX."""
    folder = Path(tempfile.mkdtemp(prefix="slimforge-quantize-sizes-"))
    model = trained(DigitsMLP)
    if kind == "torchscript":
        path = folder / "model.pt"
        torch.jit.save(torch.jit.script(model), str(path))
    elif kind == "export":
        path = folder / "model.pt2"
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.export.save(torch.export.export(model, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: batch},)),
                          str(path))
    else:
        path = folder / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example(),), str(path), dynamo=False, external_data=False,
                              input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return path


def saved_size(model, fmt: str, folder: Path) -> int:
    if fmt == "onnx":
        path = folder / "quantized.onnx"
        shutil.copyfile(model.onnx_path, path)
    else:
        path = folder / ("quantized.pt" if fmt == "torchscript" else "quantized.pt2")
        save_model(model, path, fmt, example())
    reloaded, _ = load_model(path)  # what Slimforge itself would serve and measure
    assert accuracy(reloaded) >= accuracy(trained(DigitsMLP)) - 0.01
    return path.stat().st_size


@pytest.mark.parametrize("kind, variant", [
    ("torchscript", "dynamic_int8"), ("torchscript", "static_int8"), ("export", "dynamic_int8"),
    ("export", "static_int8"), ("onnx", "onnx_dynamic_int8"), ("onnx", "onnx_static_int8"),
])
def test_int8_files_are_at_most_035x_of_fp32_and_stay_accurate(kind, variant, tmp_path):
    original, fmt = load_model(upload(kind))
    result = get_recipe("quantize").run(original, digits(), QuantizeConfig(variant=variant), NullReporter(),
                                        example=example())
    size = saved_size(result.model, result.primary_format or fmt, tmp_path)
    assert size <= 0.35 * upload(kind).stat().st_size, (size, upload(kind).stat().st_size)
