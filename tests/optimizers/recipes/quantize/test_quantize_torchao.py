"""The CUDA variants (torchao): refused with the reason on CPU-only workers, run on CUDA ones.

The refusal logic is tested here on the CPU by pretending about the device. torchao's int8 weight-only
rewrite also runs on the CPU, which lets the artifact path (unwrapped subclasses in a .pt2 that Slimforge
loads without torchao) be checked without a GPU; the `gpu` tests run every variant for real.
"""
import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.configs.quantize_routes import lookup
from optimizers.errors import RecipeError
from optimizers.formats.save_all import save_all_formats
from optimizers.recipes.quantize import torchao_routes as quantize_torchao
from optimizers.recipes.quantize.torchao_routes import TorchaoQuantizer, torchao_refusal
from optimizers.registry import get_recipe
from optimizers.reporters import NullReporter
from tests.optimizers.quantize_models import DigitsMLP, accuracy, digits, example, trained

CUDA_VARIANTS = ("weight_only_int8_cuda", "weight_only_int4_cuda", "fp8_cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def run(variant, model=None):
    return get_recipe("quantize").run(model or trained(DigitsMLP), None, QuantizeConfig(variant=variant),
                                      NullReporter(), example=example())


@pytest.mark.parametrize("variant", CUDA_VARIANTS)
def test_without_cuda_each_variant_is_refused_with_the_reason(variant, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match=f"{variant} needs a CUDA device"):
        run(variant)


def pretend_gpu(monkeypatch, capability, name="Tesla T4"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: name)


def test_fp8_needs_ada_or_hopper_and_says_which_gpu_falls_short(monkeypatch):
    pretend_gpu(monkeypatch, (7, 5))
    assert torchao_refusal("fp8_cuda") == ("fp8_cuda needs a GPU of compute capability 8.9 or newer; "
                                           "Tesla T4 is 7.5")
    assert "8.0" in torchao_refusal("weight_only_int4_cuda")


def test_a_missing_torchao_is_named(monkeypatch):
    pretend_gpu(monkeypatch, (9, 0), "NVIDIA H100")

    def missing():
        raise ImportError("No module named 'torchao'")

    monkeypatch.setattr(quantize_torchao, "_import_torchao", missing)
    assert torchao_refusal("weight_only_int8_cuda") == ("weight_only_int8_cuda needs torchao, which this worker "
                                                        "cannot import (No module named 'torchao')")


def test_torchao_is_imported_only_by_the_cuda_routes(run_python):
    code = "import sys, optimizers.recipes, optimizers.job_runner; assert 'torchao' not in sys.modules"
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr


def test_the_torchao_artifact_is_a_small_pt2_that_loads_without_torchao(tmp_path, run_python):
    pytest.importorskip("torchao")
    model = trained(DigitsMLP)
    route = lookup("weight_only_int8_cuda", "eager")
    quantizer = TorchaoQuantizer(model, QuantizeConfig(variant="weight_only_int8_cuda"), route, NullReporter(),
                                 example=example(), device="cpu")  # torchao's int8 weight-only also runs on a CPU
    quantized = quantizer.quantize()
    assert accuracy(quantized) >= accuracy(model) - 0.01
    saved = save_all_formats(quantized, tmp_path / "int8", example(), primary="export", architecture=None)
    original = save_all_formats(model, tmp_path / "fp32", example(), primary="export", architecture=None)
    assert (tmp_path / "int8" / "model.pt2").stat().st_size <= 0.4 * (tmp_path / "fp32" / "model.pt2").stat().st_size
    code = ("import sys, torch; from optimizers.formats.model_io import load_model; "
            f"model, _ = load_model({str(tmp_path / 'int8' / saved.files['export'])!r}); "
            "assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10); assert 'torchao' not in sys.modules")
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert original.files["export"] == "model.pt2"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("variant", CUDA_VARIANTS)
def test_each_cuda_variant_runs_smaller_and_close_on_a_gpu(variant, tmp_path):
    if torchao_refusal(variant):
        pytest.skip(torchao_refusal(variant))
    model = trained(DigitsMLP)
    wide = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).eval()
    target = wide if variant == "weight_only_int4_cuda" else model  # int4 groups 128 input features
    result = run(variant, target)
    assert result.primary_format == "export" and result.extras["device"] == "cuda"
    inputs = digits().val_x[:64]
    with torch.no_grad():
        expected, got = target(inputs), result.model(inputs)
    assert got.device.type == "cpu" and got.dtype == torch.float32
    tolerance = 0.15 if variant == "weight_only_int4_cuda" else 0.05  # 16 levels per group of 128 weights
    assert (got - expected).norm() <= tolerance * expected.norm()
    saved = save_all_formats(result.model, tmp_path / "q", example(), primary="export", architecture=None)
    floats = save_all_formats(target, tmp_path / "f", example(), primary="export", architecture=None)
    quantized_size = (tmp_path / "q" / saved.files["export"]).stat().st_size
    assert quantized_size < (tmp_path / "f" / floats.files["export"]).stat().st_size
