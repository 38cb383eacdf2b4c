"""Each architecture's settings count its parameters without torch, exactly as many as the module built has."""
import pytest

from optimizers.configs.architectures import parse_architecture
from optimizers.measure.inference import count_parameters
from optimizers.zoo.models import build_model

CASES = [
    ("mlp", {}), ("mlp", {"hidden": []}), ("mlp", {"in_features": 784, "hidden": [300, 100, 50], "num_classes": 7}),
    ("small_cnn", {}), ("small_cnn", {"in_channels": 3, "image_size": 32, "channels": [8, 16, 32]}),
    ("resnet", {}), ("resnet", {"width": 0.25, "layers": [1, 1, 1, 1], "in_channels": 1}),
    ("resnet", {"block": "bottleneck", "layers": [3, 4, 6, 3], "small_input": False, "num_classes": 1000}),
    ("resnet", {"block": "bottleneck", "width": 0.1, "layers": [1, 2, 1, 1]}),
    ("transformer", {}), ("transformer", {"d_model": 128, "heads": 8, "layers": 3, "vocab_size": 50, "max_len": 7}),
]


@pytest.mark.parametrize(("name", "config"), CASES)
def test_the_count_from_the_settings_is_the_built_modules(name, config):
    settings = parse_architecture(name, config)
    assert settings.parameter_count() == count_parameters(build_model(name, settings))


def test_resnet_50_has_its_well_known_count():
    config = {"block": "bottleneck", "layers": [3, 4, 6, 3], "small_input": False, "num_classes": 1000}
    assert parse_architecture("resnet", config).parameter_count() == 25_557_032  # torchvision's resnet50
