"""The built-in architectures: parameter counts checked against known figures, and every model
runs its example input, traces, exports and (for the small ones) converts to ONNX."""

import numpy as np
import onnxruntime
import pytest
import torch

from optimizers.configs import ConfigError
from optimizers.zoo import parse_architecture
from optimizers.zoo.models import architecture_summary, build_model

# Small settings keep every test here quick; the defaults are exercised by the counts below.
SMALL = {
    "resnet": {"width": 0.125},
    "resnet_imagenet_bottleneck": {"width": 0.125, "block": "bottleneck", "layers": "3,4,6,3",
                                   "small_input": False, "image_size": 64},
    "mlp": {},
    "small_cnn": {},
    "transformer": {"vocab_size": 50, "max_len": 12, "d_model": 16, "heads": 2, "layers": 1},
}


def arch(key: str) -> str:
    return key.split("_imagenet")[0]


def example_for(name: str, config: dict) -> torch.Tensor:
    shape, dtype = parse_architecture(name, config).example_input()
    if dtype == "int64":
        return torch.randint(0, config.get("vocab_size", 1000), shape, generator=torch.Generator().manual_seed(0))
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def test_cifar_resnet18_has_the_known_parameter_count():
    # 11,173,962 is the CIFAR-style ResNet-18 (3x3 stem, no max-pool, 10 classes) of kuangliu/pytorch-cifar,
    # counted independently by hand: stem conv 3*64*9 + bn 2*64 = 1,856; layer1 2*(2*64*64*9 + 2*128)
    # = 147,968; layer2 (64*128*9 + 128*128*9 + 2*256 + 64*128 + 256) + (2*128*128*9 + 512) = 525,568;
    # layer3 likewise 919,040 + 1,180,672 = 2,099,712; layer4 3,673,088 + 4,720,640 = 8,393,728;
    # fc 512*10 + 10 = 5,130. Total 11,173,962.
    summary = architecture_summary("resnet", {"layers": [2, 2, 2, 2], "small_input": True, "num_classes": 10})
    assert summary == {"name": "resnet", "config": summary["config"], "params": 11_173_962,
                       "input_shape": [1, 3, 32, 32], "input_dtype": "float32"}
    built = build_model("resnet", {})
    assert sum(p.numel() for p in built.parameters()) == 11_173_962


@pytest.mark.parametrize("config, params", [
    # torchvision's published counts for resnet18 and resnet50 (ImageNet stem, 1000 classes).
    ({"small_input": False, "num_classes": 1000}, 11_689_512),
    ({"small_input": False, "num_classes": 1000, "block": "bottleneck", "layers": "3,4,6,3"}, 25_557_032),
])
def test_imagenet_resnets_match_torchvision_counts(config, params):
    assert architecture_summary("resnet", config)["params"] == params


def test_width_multiplier_shrinks_parameters_about_quadratically():
    full = architecture_summary("resnet", {})["params"]
    half = architecture_summary("resnet", {"width": 0.5})["params"]
    tiny = architecture_summary("resnet", {"width": 0.05})["params"]
    assert 0.2 * full < half < 0.3 * full
    assert tiny < half
    assert build_model("resnet", {"width": 0.05}).conv1.out_channels == 8  # never below 8 channels


def test_stems_differ_as_documented():
    small = build_model("resnet", SMALL["resnet"])
    imagenet = build_model("resnet", SMALL["resnet_imagenet_bottleneck"])
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, torch.nn.MaxPool2d)
    assert imagenet.fc.in_features == 64 * 4  # bottleneck outputs four times the stage width


@pytest.mark.parametrize("key", list(SMALL))
def test_example_input_runs_in_eval_mode(key):
    name, config = arch(key), SMALL[key]
    model = build_model(name, config)
    assert not model.training
    with torch.no_grad():
        output = model(example_for(name, config))
    num_classes = parse_architecture(name, config).num_classes
    assert output.shape == (1, num_classes) and torch.isfinite(output).all()


@pytest.mark.parametrize("key", list(SMALL))
def test_trace_and_export_reproduce_the_module(key):
    name, config = arch(key), SMALL[key]
    model, example = build_model(name, config), example_for(name, config)
    with torch.no_grad():
        expected = model(example)
        traced = torch.jit.trace(model, example)
        assert torch.allclose(traced(example), expected, atol=1e-5)
    exported = torch.export.export(model, (example,)).module()
    with torch.no_grad():
        assert torch.allclose(exported(example), expected, atol=1e-5)


def test_transformer_trace_keeps_its_linear_layers_visible():
    # Without care, an eval-mode trace records each encoder layer as one fused kernel, hiding its
    # Linear layers from quantization.
    model = build_model("transformer", SMALL["transformer"])
    with torch.no_grad():
        traced = torch.jit.trace(model, example_for("transformer", SMALL["transformer"]))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::linear" in kinds and "aten::_transformer_encoder_layer_fwd" not in kinds
    assert torch.backends.mha.get_fastpath_enabled()  # the switch is restored


@pytest.mark.parametrize("key", ["mlp", "small_cnn", "transformer"])
def test_onnx_export_runs_in_onnxruntime(key, tmp_path):
    name, config = arch(key), SMALL[key]
    model, example = build_model(name, config), example_for(name, config)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(output, model(example).numpy(), atol=1e-5)


def test_absurd_settings_are_refused_before_building():
    with pytest.raises(ConfigError) as caught:
        build_model("mlp", {"in_features": 1_000_000, "hidden": "65536"})
    assert caught.value.field == "config"
    assert "the limit is 500,000,000" in caught.value.message


def test_a_parsed_config_must_belong_to_the_named_architecture():
    assert isinstance(build_model("mlp", parse_architecture("mlp", {})), torch.nn.Module)
    with pytest.raises(ConfigError) as caught:
        build_model("resnet", parse_architecture("mlp", {}))
    assert caught.value.field == "architecture"
