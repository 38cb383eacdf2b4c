import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.errors import Cancelled, RecipeError
from optimizers.formats.model_io import EXPORT, TORCHSCRIPT, load_model, save_model
from optimizers.measure.inference import count_parameters, max_abs, max_abs_diff, run_model
from optimizers.registry import applicability, get_recipe
from optimizers.reporters import ListReporter, NullReporter
from tests.optimizers.models import CNN_INPUT, MLP, MLP_INPUT, TiedLanguageModel, build


def quantize(model, config=None, report=None):
    recipe = get_recipe("quantize")
    return recipe.run(model, None, config or QuantizeConfig(), report or NullReporter())


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def quantize_save_reload(path, example, tmp_path, config=None):
    """Quantize the model at `path`, save it in its own format, load it back from disk."""
    model, fmt = load_model(path)
    before = snapshot(model)
    reference = run_model(model, example)
    result = quantize(model, config)
    saved = tmp_path / ("quantized.pt" if fmt == TORCHSCRIPT else "quantized.pt2")
    save_model(result.model, saved, fmt, example)
    reloaded, reloaded_fmt = load_model(saved)
    assert reloaded_fmt == fmt
    # The input model is untouched: same tensors, same outputs.
    after = snapshot(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    torch.testing.assert_close(run_model(model, example), reference)
    return result, saved, reloaded, reference


@pytest.mark.parametrize("fixture", ["mlp_pt", "mlp_pt2"])
def test_quantize_shrinks_a_linear_heavy_model_at_least_twofold(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    example = torch.randn(MLP_INPUT)
    result, saved, reloaded, reference = quantize_save_reload(path, example, tmp_path)
    assert saved.stat().st_size <= 0.5 * path.stat().st_size
    assert max_abs_diff(reference, run_model(reloaded, example)) <= 0.05 * max_abs(reference)
    # Weights are stored in int8 but still counted: the model has as many weights as before.
    assert count_parameters(reloaded) == count_parameters(load_model(path)[0])
    assert "int8" in result.backend or "quantize_dynamic_jit" in result.backend


def test_torchscript_reloads_with_plain_torch_jit_load(mlp_pt, tmp_path):
    example = torch.randn(MLP_INPUT)
    result, saved, _, reference = quantize_save_reload(mlp_pt, example, tmp_path)
    plain = torch.jit.load(str(saved))
    with torch.no_grad():
        torch.testing.assert_close(plain(example), reference, atol=0.05 * max_abs(reference), rtol=0)
    assert "quantized::linear_dynamic" in str(plain.inlined_graph)
    assert result.backend.startswith("torch.ao quantize_dynamic_jit")
    assert result.backend.endswith("per-channel")


def test_export_reloads_with_plain_torch_export_load_and_stores_int8(mlp_pt2, tmp_path):
    example = torch.randn(MLP_INPUT)
    result, saved, _, reference = quantize_save_reload(mlp_pt2, example, tmp_path)
    program = torch.export.load(str(saved))
    int8_weights = [t for t in program.state_dict.values() if t.dtype == torch.int8]
    assert [tuple(t.shape) for t in int8_weights] == [(512, 256), (10, 512)]
    # No float weight matrix is left behind: the only 2-D float tensors are [out, 1] scales.
    floats = [t for t in program.state_dict.values() if t.is_floating_point()]
    assert not [t for t in floats if t.dim() == 2 and t.shape[1] > 1]
    torch.testing.assert_close(program.module()(example), reference, atol=0.05 * max_abs(reference), rtol=0)
    assert result.backend == "weight-only int8 (per-channel), dequantized at run time"


def test_export_keeps_a_dynamic_batch(cnn_pt2_dynamic_batch, tmp_path):
    example = torch.randn(CNN_INPUT)
    _, saved, reloaded, _ = quantize_save_reload(cnn_pt2_dynamic_batch, example, tmp_path)
    original, _ = load_model(cnn_pt2_dynamic_batch)
    for batch in (1, 5, 64):
        inputs = torch.randn(batch, *CNN_INPUT[1:])
        expected = run_model(original, inputs)
        assert max_abs_diff(expected, run_model(reloaded, inputs)) <= 0.05 * max_abs(expected)


def test_traced_cnn_quantizes_only_its_linear_head(cnn_pt, tmp_path):
    example = torch.randn(CNN_INPUT)
    _, saved, reloaded, reference = quantize_save_reload(cnn_pt, example, tmp_path)
    assert str(reloaded.inlined_graph).count("quantized::linear_dynamic") == 2
    assert max_abs_diff(reference, run_model(reloaded, example)) <= 0.05 * max_abs(reference)
    assert saved.stat().st_size < cnn_pt.stat().st_size


@pytest.mark.parametrize("fixture", ["mlp_pt", "mlp_pt2"])
def test_per_tensor_scales_work_too(fixture, request, tmp_path):
    example = torch.randn(MLP_INPUT)
    config = QuantizeConfig(per_channel=False)
    result, _, reloaded, reference = quantize_save_reload(request.getfixturevalue(fixture), example, tmp_path,
                                                          config)
    assert "per-tensor" in result.backend
    assert max_abs_diff(reference, run_model(reloaded, example)) <= 0.1 * max_abs(reference)


def test_a_model_without_linear_layers_has_nothing_for_dynamic_int8(no_linear_pt):
    model, _ = load_model(no_linear_pt)
    # Its convolution can still be quantized statically, and any float model can be cast to fp16 / bf16.
    verdict = applicability(model)["quantize"]
    assert (verdict["applicable"], verdict["reason"]) == (True, "1 convolution layer(s) can be quantized")
    with pytest.raises(RecipeError, match="nothing to quantize: dynamic_int8 found no layer it handles"):
        quantize(model)


def test_an_already_quantized_model_is_not_applicable(mlp_pt, tmp_path):
    model, _ = load_model(mlp_pt)
    assert applicability(model)["quantize"]["applicable"] is True
    assert applicability(quantize(model).model)["quantize"] == {  # no variants listed for what does not apply
        "applicable": False, "reason": "the model's layers are already quantized"
    }


def test_quantized_export_model_has_nothing_left_to_quantize(mlp_pt2):
    model, _ = load_model(mlp_pt2)
    assert applicability(quantize(model).model)["quantize"] == {
        "applicable": False, "reason": "the model's Linear weights are already stored as int8"
    }


@pytest.mark.parametrize("fixture", ["mlp_pt", "mlp_pt2"])
def test_cancel_stops_before_quantizing(fixture, request):
    model, _ = load_model(request.getfixturevalue(fixture))
    report = NullReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        quantize(model, report=report)


def test_reports_its_stage_and_progress(mlp_pt2):
    model, _ = load_model(mlp_pt2)
    report = ListReporter()
    quantize(model, report=report)
    assert report.events[0] == {"kind": "stage", "name": "quantize"}
    progress = [event for event in report.events if event["kind"] == "progress"]
    assert {"kind": "progress", "done": 2, "total": 2, "stage": "quantize"} in progress  # one per Linear layer
    assert progress[-1]["done"] == progress[-1]["total"]


def test_registry_exposes_the_config_type():
    assert get_recipe("quantize").config_type is QuantizeConfig
    assert EXPORT != TORCHSCRIPT


def export_and_save(model, example, path):
    torch.export.save(torch.export.export(model, (example,)), str(path))
    return path


def test_tied_weights_are_stored_once_as_int8(tmp_path):
    example = torch.randint(0, 1000, (1, 8))
    path = export_and_save(build(TiedLanguageModel), example, tmp_path / "tied.pt2")
    _, saved, reloaded, reference = quantize_save_reload(path, example, tmp_path)
    assert saved.stat().st_size <= 0.35 * path.stat().st_size  # one int8 copy, not int8 plus float
    assert max_abs_diff(reference, run_model(reloaded, example)) <= 0.02 * max_abs(reference)


@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")  # inside torch's run_decompositions
def test_decomposed_export_graphs_are_quantized_too(tmp_path):
    example = torch.randn(MLP_INPUT)
    program = torch.export.export(build(MLP), (example,)).run_decompositions()  # Linear -> permute + addmm
    path = tmp_path / "decomposed.pt2"
    torch.export.save(program, str(path))
    _, saved, reloaded, reference = quantize_save_reload(path, example, tmp_path)
    assert saved.stat().st_size <= 0.5 * path.stat().st_size
    assert max_abs_diff(reference, run_model(reloaded, example)) <= 0.05 * max_abs(reference)
