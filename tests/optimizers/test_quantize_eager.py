"""quantize on an eager module (a zoo architecture loaded from a safetensors state dict)."""
import torch

from optimizers.job_spec import JobSpec
from optimizers.jobs import run_recipe
from optimizers.measure import count_parameters
from optimizers.reporting import NullReporter
from optimizers.statedict import save_safetensors
from optimizers.zoo.models import build_model


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
