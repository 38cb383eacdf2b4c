"""quantize on an eager module (a zoo architecture loaded from a safetensors state dict)."""
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.configs import QuantizeConfig
from optimizers.formats.statedict import save_safetensors
from optimizers.job_runner import run_recipe
from optimizers.job_spec import JobSpec
from optimizers.measure.inference import count_parameters
from optimizers.registry import get_recipe
from optimizers.reporters import NullReporter
from optimizers.zoo.models import build_model
from tests.optimizers.quantize_models import DigitsMLP, DigitsRNN, digits, example, trained


def test_a_state_dict_model_comes_back_as_smaller_int8_torchscript(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", {"in_features": 64, "hidden": [256, 256], "num_classes": 10})
    save_safetensors(model, tmp_path / "mlp.safetensors")
    spec = JobSpec.from_dict({
        "action": "run", "model_path": str(tmp_path / "mlp.safetensors"), "input_shape": [1, 64],
        "architecture": {"name": "mlp", "config": {"in_features": 64, "hidden": [256, 256], "num_classes": 10}},
        "recipe": "quantize", "config": {}, "out_dir": str(tmp_path / "out"),
    })
    result = run_recipe(spec, NullReporter())
    assert result["artifacts"][0] == "model.pt" and "torchscript" in result["formats"]["written"]
    assert "safetensors" in result["formats"]["skipped"]  # int8 packed weights are no float state dict
    assert result["after"]["size_bytes"] < 0.4 * result["before"]["size_bytes"]
    loaded = torch.jit.load(str(tmp_path / "out" / "model.pt"))
    assert count_parameters(loaded) == count_parameters(model)  # packed int8 weights are still counted
    x = torch.randn(4, 64)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(loaded(x), expected, atol=0.05 * expected.abs().max().item())


def _saved_size(model, path, example) -> int:
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, str(path))
    else:
        torch.jit.save(torch.jit.trace(model, example), str(path))
    return path.stat().st_size


def test_dynamic_int8_quantizes_lstm_gru_and_linear_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model, splits = DigitsRNN().eval(), digits()  # untrained: training recurrent layers takes too long here
    result = get_recipe("quantize").run(model, splits, QuantizeConfig(), NullReporter(), example=example())
    assert isinstance(result.model, torch.jit.ScriptModule) and result.primary_format == "torchscript"
    graph = str(result.model.inlined_graph)
    assert "quantized_lstm" in graph and "quantized_gru" in graph and "linear_dynamic" in graph
    # 0.4, not 0.35: at 70k weights TorchScript's own code and per-gate scales are a visible share of the file.
    assert _saved_size(result.model, tmp_path / "q.pt", example()) <= 0.4 * _saved_size(model, tmp_path / "f.pt",
                                                                                         example())
    with torch.no_grad():
        expected, got = model(splits.val_x), result.model(splits.val_x)
    assert (got - expected).norm() <= 0.02 * expected.norm()
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())  # the input is untouched


def test_dynamic_int8_of_a_linear_heavy_model_is_at_most_035x_and_agrees(tmp_path):
    model, splits = trained(DigitsMLP), digits()
    result = get_recipe("quantize").run(model, splits, QuantizeConfig(), NullReporter(), example=example())
    assert _saved_size(result.model, tmp_path / "q.pt", example()) <= 0.35 * _saved_size(model, tmp_path / "f.pt",
                                                                                          example())
    with torch.no_grad():
        agreement = (result.model(splits.val_x).argmax(1) == model(splits.val_x).argmax(1)).float().mean()
    assert agreement >= 0.99 and result.extras["route"] == "eager_dynamic"


def test_layers_linear_leaves_recurrent_layers_float():
    result = get_recipe("quantize").run(DigitsRNN().eval(), None, QuantizeConfig(layers="linear"), NullReporter(),
                                        example=example())
    graph = str(result.model.inlined_graph)
    assert "linear_dynamic" in graph and "quantized_lstm" not in graph
