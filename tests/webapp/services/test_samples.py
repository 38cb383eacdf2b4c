"""The sample model's bytes, written without torch, are a state dict the zoo's MLP loads as it loads any upload."""
import torch

from optimizers.formats.statedict import load_safetensors_model
from webapp.services.samples import SAMPLE_CONFIG, mlp_safetensors


def test_the_sample_state_dict_loads_into_the_mlp_and_classifies_a_digit(tmp_path):
    path = tmp_path / "sample.safetensors"
    path.write_bytes(mlp_safetensors(SAMPLE_CONFIG, seed=1))
    model = load_safetensors_model(path, "mlp", SAMPLE_CONFIG.to_dict())
    output = model(torch.rand(4, 1, 8, 8))
    assert output.shape == (4, 10) and torch.isfinite(output).all()
    first = model.layers[1].weight
    assert first.abs().max() <= 1 / 8 and first.std() > 0.03  # torch's own start: uniform in +-1/sqrt(64)
    assert mlp_safetensors(SAMPLE_CONFIG, seed=1) == path.read_bytes() != mlp_safetensors(SAMPLE_CONFIG, seed=2)
