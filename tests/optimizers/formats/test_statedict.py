"""Safetensors state dicts loaded into built-in architectures: round trips and mismatches."""

import pytest
import safetensors.torch
import torch

from optimizers.errors import ModelFileError
from optimizers.formats.statedict import load_safetensors_model, read_safetensors_header, save_safetensors
from optimizers.zoo import parse_architecture
from optimizers.zoo.models import build_model

RESNET = {"width": 0.125, "layers": "1,1,1,1"}
TRANSFORMER = {"vocab_size": 50, "max_len": 12, "d_model": 16, "heads": 2, "layers": 1}


def example_for(name: str, config: dict) -> torch.Tensor:
    shape, dtype = parse_architecture(name, config).example_input()
    if dtype == "int64":
        return torch.arange(shape[1]).reshape(shape) % config.get("vocab_size", 1000)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Give batch-norm statistics non-default values, so a lost buffer would change the output."""
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean") or name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("name, config", [("resnet", RESNET), ("mlp", {}), ("small_cnn", {}),
                                          ("transformer", TRANSFORMER)])
def test_round_trip_gives_identical_outputs(name, config, tmp_path):
    original = trained_looking(build_model(name, config))
    path = tmp_path / "weights.safetensors"
    save_safetensors(original, path)
    loaded = load_safetensors_model(path, name, config)
    assert not loaded.training
    example = example_for(name, config)
    with torch.no_grad():
        assert torch.equal(loaded(example), original(example))


def test_header_lists_every_tensor_with_dtype_shape_and_offsets(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_safetensors(build_model("mlp", {"hidden": "8"}), path)
    header = read_safetensors_header(path)
    assert {name: (entry["dtype"], entry["shape"]) for name, entry in header.items()} == {
        "layers.1.weight": ("F32", (8, 64)), "layers.1.bias": ("F32", (8,)),
        "layers.4.weight": ("F32", (10, 8)), "layers.4.bias": ("F32", (10,)),
    }
    assert sorted(entry["data_offsets"] for entry in header.values())[0][0] == 0


def test_wrong_architecture_names_missing_and_unexpected_tensors(tmp_path):
    path = tmp_path / "cnn.safetensors"
    save_safetensors(build_model("small_cnn", {}), path)
    with pytest.raises(ModelFileError) as caught:
        load_safetensors_model(path, "mlp", {})
    message = str(caught.value)
    assert message.startswith("the weights do not fit the mlp architecture with these settings: no tensor name matches")
    assert "missing 6 (layers.1.weight, layers.1.bias, layers.4.weight, layers.4.bias and 2 more)" in message
    assert "unexpected 14 (classifier.1.bias, classifier.1.weight, features.0.weight" in message


def test_wrong_settings_name_mismatched_shapes(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_safetensors(build_model("mlp", {"num_classes": 3}), path)
    with pytest.raises(ModelFileError) as caught:
        load_safetensors_model(path, "mlp", {"num_classes": 10})
    assert str(caught.value) == (
        "the weights do not fit the mlp architecture with these settings: mismatched 2 (layers.7.weight: "
        "expected [10,64] float32, got [3,64] float32, layers.7.bias: expected [10] float32, got [3] float32)")


def test_wrong_dtype_is_a_mismatch(tmp_path):
    path = tmp_path / "half.safetensors"
    save_safetensors(build_model("mlp", {"hidden": "8"}).half(), path)
    with pytest.raises(ModelFileError, match=r"layers.1.weight: expected \[8,64\] float32, got \[8,64\] float16"):
        load_safetensors_model(path, "mlp", {"hidden": "8"})


def test_long_mismatch_lists_stay_readable(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_safetensors(build_model("resnet", {"width": 0.125}), path)
    with pytest.raises(ModelFileError) as caught:
        load_safetensors_model(path, "resnet", {"width": 0.25, "block": "bottleneck"})
    assert len(str(caught.value)) <= 700
    assert "more" in str(caught.value)


@pytest.mark.parametrize("value, kind", [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_non_finite_weights_are_refused_naming_the_tensor(value, kind, tmp_path):
    model = build_model("mlp", {"hidden": "8"})
    with torch.no_grad():
        model.layers[4].weight[3, 2] = value
    path = tmp_path / "bad.safetensors"
    save_safetensors(model, path)
    with pytest.raises(ModelFileError) as caught:
        load_safetensors_model(path, "mlp", {"hidden": "8"})
    assert str(caught.value) == f"the weights hold values that are not finite numbers: layers.4.weight ({kind})"


def test_data_parallel_prefix_and_missing_batch_norm_counters_are_accepted(tmp_path):
    original = trained_looking(build_model("small_cnn", {}))
    state = {f"module.{name}": tensor for name, tensor in original.state_dict().items()
             if not name.endswith("num_batches_tracked")}
    path = tmp_path / "ddp.safetensors"
    safetensors.torch.save_file(state, str(path))
    loaded = load_safetensors_model(path, "small_cnn", {})
    example = example_for("small_cnn", {})
    with torch.no_grad():
        assert torch.equal(loaded(example), original(example))


def test_tied_weights_are_saved_as_separate_copies(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[1].weight = model[0].weight
    path = tmp_path / "tied.safetensors"
    save_safetensors(model, path)
    assert torch.equal(safetensors.torch.load_file(str(path))["1.weight"], model[0].weight.detach())


def test_quantized_modules_cannot_be_saved_as_plain_state_dicts(tmp_path):
    mlp = build_model("mlp", {"hidden": "8"})
    eager = torch.ao.quantization.quantize_dynamic(mlp, {torch.nn.Linear}, dtype=torch.qint8)
    with pytest.raises(ValueError, match="cannot save as safetensors: layers.1._packed_params"):
        save_safetensors(eager, tmp_path / "eager.safetensors")
    traced = torch.jit.trace(mlp, torch.randn(1, 64))
    scripted = torch.ao.quantization.quantize_dynamic_jit(
        traced, {"": torch.ao.quantization.per_channel_dynamic_qconfig})
    with pytest.raises(ValueError, match="keeps weights in LinearPackedParamsBase objects, not plain tensors"):
        save_safetensors(scripted, tmp_path / "scripted.safetensors")


def test_bad_settings_are_config_errors_not_file_errors(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_safetensors(build_model("mlp", {}), path)
    with pytest.raises(ValueError) as caught:
        load_safetensors_model(path, "mlp", {"hidden": "0"})
    assert caught.value.field == "hidden"
