"""static_int8: FX graph mode for eager modules, quantize_jit for TorchScript, FX on the graph of a .pt2."""
import io

import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.errors import RecipeError
from optimizers.registry import get_recipe
from optimizers.reporters import ListReporter, NullReporter
from tests.optimizers.quantize_models import DigitsCNN, DigitsMLP, accuracy, digits, example, trained


def static(model, config=None, data="digits", report=None):
    data = digits() if data == "digits" else data
    return get_recipe("quantize").run(model, data, config or QuantizeConfig(variant="static_int8"),
                                      report or NullReporter(), example=example())


def size_of(model) -> int:
    buffer = io.BytesIO()
    torch.jit.save(model if isinstance(model, torch.jit.ScriptModule) else torch.jit.trace(model, example()), buffer)
    return len(buffer.getvalue())


def quantized_ops(model: torch.jit.ScriptModule) -> set[str]:
    return {node.kind() for node in model.inlined_graph.nodes() if node.kind().startswith("quantized::")}


def test_fx_static_int8_of_a_linear_heavy_model_is_small_fast_kernels_and_accurate():
    model = trained(DigitsMLP)
    report = ListReporter()
    result = static(model, report=report)
    assert isinstance(result.model, torch.jit.ScriptModule) and result.primary_format == "torchscript"
    assert "quantized::linear_relu" in quantized_ops(result.model)  # int8 activations: not linear_dynamic
    assert size_of(result.model) <= 0.35 * size_of(model)
    assert accuracy(result.model) >= accuracy(model) - 0.01
    assert result.backend.startswith("torch.ao FX graph mode static int8 (x86), per-channel")
    assert "calibrated on 256 training sample(s)" in result.notes[0]


def test_fx_static_int8_fuses_and_quantizes_convolutions():
    model = trained(DigitsCNN, epochs=2)
    result = static(model)
    assert {"quantized::conv2d_relu", "quantized::linear_relu"} <= quantized_ops(result.model)
    assert accuracy(result.model) >= accuracy(model) - 0.01
    assert result.model(torch.rand(5, 1, 8, 8)).shape == (5, 10)  # the batch is not fixed by the trace


def test_layers_linear_leaves_convolutions_float():
    result = static(trained(DigitsCNN, epochs=2), QuantizeConfig(variant="static_int8", layers="linear"))
    ops = quantized_ops(result.model)
    assert "quantized::linear_relu" in ops and not any("conv" in op for op in ops)


def test_per_tensor_weights_are_said_in_the_backend():
    result = static(trained(DigitsMLP), QuantizeConfig(variant="static_int8", per_channel=False))
    assert "per-tensor" in result.backend and accuracy(result.model) >= accuracy(trained(DigitsMLP)) - 0.02


def test_static_int8_without_a_dataset_is_refused_with_the_reason():
    with pytest.raises(RecipeError, match="static_int8 needs a dataset"):
        static(trained(DigitsMLP), data=None)


def test_quantize_jit_static_int8_for_a_torchscript_upload():
    model = trained(DigitsCNN, epochs=2)
    scripted = torch.jit.script(model)
    result = static(scripted)
    assert result.backend.startswith("torch.ao quantize_jit static int8 (x86)") and result.primary_format is None
    assert {"quantized::conv2d_relu", "quantized::linear"} <= quantized_ops(result.model)
    assert size_of(result.model) <= 0.4 * size_of(scripted)
    assert accuracy(result.model) >= accuracy(model) - 0.01


def test_fx_static_int8_for_an_exported_program_keeps_its_dynamic_batch():
    model = trained(DigitsCNN, epochs=2)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    result = static(program.module())
    assert result.extras["route"] == "export_fx_static" and result.primary_format == "torchscript"
    assert {"quantized::conv2d", "quantized::linear_relu"} <= quantized_ops(result.model)
    assert accuracy(result.model) >= accuracy(model) - 0.01
    assert result.model(torch.rand(1, 1, 8, 8)).shape == (1, 10)
