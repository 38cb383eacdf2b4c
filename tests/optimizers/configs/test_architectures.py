"""Architecture settings: validated like recipe configs, drawn as forms, importable without torch."""

import pytest

from optimizers.configs import ConfigError
from optimizers.zoo import (
    ARCHITECTURE_CONFIGS,
    MLPConfig,
    ResNetConfig,
    SmallCNNConfig,
    TransformerConfig,
    parse_architecture,
)


def test_the_four_architectures_are_known_by_name():
    assert list(ARCHITECTURE_CONFIGS) == ["resnet", "mlp", "small_cnn", "transformer"]


def test_defaults_suit_small_data():
    assert ResNetConfig().to_dict() == {"block": "basic", "layers": [2, 2, 2, 2], "width": 1.0, "small_input": True,
                                        "in_channels": 3, "image_size": 32, "num_classes": 10}
    assert MLPConfig().to_dict() == {"in_features": 64, "hidden": [128, 64], "num_classes": 10, "dropout": 0.1}
    assert SmallCNNConfig().to_dict() == {"in_channels": 1, "image_size": 8, "channels": [16, 32], "num_classes": 10}
    assert TransformerConfig().to_dict() == {"vocab_size": 1000, "max_len": 32, "d_model": 64, "heads": 4,
                                             "layers": 2, "num_classes": 2}


def test_example_inputs_are_a_batch_of_one():
    assert ResNetConfig(in_channels=1, image_size=8).example_input() == ((1, 1, 8, 8), "float32")
    assert MLPConfig().example_input() == ((1, 64), "float32")
    assert SmallCNNConfig().example_input() == ((1, 1, 8, 8), "float32")
    assert TransformerConfig(max_len=16).example_input() == ((1, 16), "int64")


@pytest.mark.parametrize("layers", [[3, 4, 6, 3], (3, 4, 6, 3), "3,4,6,3", " 3, 4 ,6,3 "])
def test_integer_lists_accept_lists_tuples_and_form_text(layers):
    config = parse_architecture("resnet", {"layers": layers, "block": "bottleneck"})
    assert config.layers == (3, 4, 6, 3)
    assert config.to_dict()["layers"] == [3, 4, 6, 3]
    assert parse_architecture("resnet", config.to_dict()) == config


@pytest.mark.parametrize("layers, message", [
    ("2,2,2", "must have exactly 4 items; got 3"),
    ("2,x,2,2", "must be comma-separated integers, e.g. 2,2,2,2; got '2,x,2,2'"),
    ([2, True, 2, 2], "must contain integers only; got [2, True, 2, 2]"),
    ([2, 2.5, 2, 2], "must contain integers only"),
    ("0,2,2,2", "must be at least 1; got 0"),
    ([2, 2, 2, 65], "must be at most 64; got 65"),
    (4, "must be a list of integers, e.g. 2,2,2,2; got 4"),
    (None, "must be a list of integers"),
])
def test_bad_integer_lists_name_the_field(layers, message):
    with pytest.raises(ConfigError) as caught:
        parse_architecture("resnet", {"layers": layers})
    assert caught.value.field == "layers"
    assert message in caught.value.message


def test_an_empty_hidden_list_makes_a_linear_classifier():
    assert MLPConfig.from_dict({"hidden": ""}).hidden == ()
    assert MLPConfig.from_dict({"hidden": []}).hidden == ()


@pytest.mark.parametrize("name, data, field", [
    ("resnet", {"width": 0.01}, "width"),
    ("resnet", {"width": float("nan")}, "width"),
    ("resnet", {"block": "dense"}, "block"),
    ("resnet", {"small_input": "yes"}, "small_input"),
    ("mlp", {"dropout": 1.0}, "dropout"),
    ("mlp", {"hidden": "64,0"}, "hidden"),
    ("small_cnn", {"num_classes": 0}, "num_classes"),
    ("small_cnn", {"channels": "8,8,8,8"}, "channels"),  # four halvings of an 8-pixel image
    ("small_cnn", {"image_size": 512, "channels": "1024"}, "image_size"),  # a 67-million-feature head
    ("transformer", {"d_model": 64, "heads": 3}, "heads"),
    ("transformer", {"depth": 2}, "depth"),
])
def test_bad_settings_name_the_field(name, data, field):
    with pytest.raises(ConfigError) as caught:
        parse_architecture(name, data)
    assert caught.value.field == field


def test_combination_errors_explain_themselves():
    with pytest.raises(ConfigError, match="channels: 4 stages halve the image 4 times; an image of 8 pixels allows"):
        SmallCNNConfig(channels=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match=r"heads: must divide d_model \(64\); got 3"):
        TransformerConfig(heads=3)


@pytest.mark.parametrize("name", ["vgg", "", None, 3])
def test_unknown_architecture_is_an_architecture_field_error(name):
    with pytest.raises(ConfigError) as caught:
        parse_architecture(name, {})
    assert caught.value.field == "architecture"
    assert "known: resnet, mlp, small_cnn, transformer" in caught.value.message


def test_settings_must_be_an_object():
    with pytest.raises(ConfigError) as caught:
        parse_architecture("mlp", "hidden=64")
    assert caught.value.field == "config"


def test_number_fields_store_floats_so_json_round_trips_are_exact():
    assert ResNetConfig(width=1).to_dict()["width"] == 1.0
    assert isinstance(ResNetConfig(width=1).width, float)


def test_describe_fields_draws_integer_lists_as_text_with_limits():
    described = {entry["name"]: entry for entry in ResNetConfig.describe_fields()}
    assert described["layers"] == {
        "name": "layers", "type": "integers", "default": "2,2,2,2", "help": described["layers"]["help"],
        "choices": None, "min": 1, "max": 64, "min_items": 4, "max_items": 4,
    }
    assert described["block"]["choices"] == ["basic", "bottleneck"]
    assert described["width"]["type"] == "number" and described["width"]["default"] == 1.0
    assert {entry["name"]: entry["default"] for entry in MLPConfig.describe_fields()}["hidden"] == "128,64"


@pytest.mark.parametrize("name", list(ARCHITECTURE_CONFIGS))
def test_a_form_posting_every_default_back_gives_the_default_config(name):
    config_type = ARCHITECTURE_CONFIGS[name]
    described = config_type.describe_fields()
    assert all(entry["type"] in {"integer", "number", "boolean", "string", "integers"} for entry in described)
    assert all(entry["help"] for entry in described)
    posted = {entry["name"]: entry["default"] for entry in described}
    assert parse_architecture(name, posted) == config_type()


def test_zoo_settings_and_the_header_check_import_without_torch(run_python):
    code = ("import optimizers.zoo, optimizers.formats.safetensors_header, sys; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'safetensors'}))")
    finished = run_python("-c", code)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "values", "shape", "dtype", "problem"), [
    ("mlp", {}, (1, 1, 8, 8), "float32", None),
    ("mlp", {}, (1, 3, 32, 32), "float32", "in_features: the input has 3072 values per sample"),
    ("mlp", {}, (1, 64), "int64", "token ids"),
    ("small_cnn", {}, (1, 1, 8, 8), "float32", None),
    ("small_cnn", {}, (1, 64), "float32", "in_channels and image_size: the input's samples are [64]"),
    ("resnet", {"in_channels": 1}, (1, 1, 28, 28), "float32", None),
    ("resnet", {}, (1, 1, 28, 28), "float32", "in_channels: the input's samples are [1, 28, 28]"),
    ("transformer", {}, (1, 16), "int64", None),
    ("transformer", {}, (1, 64), "int64", "max_len"),
    ("transformer", {}, (1, 16), "float32", "token ids (int64)"),
])
def test_an_architecture_says_which_inputs_it_cannot_take(name, values, shape, dtype, problem):
    refusal = parse_architecture(name, values).input_refusal(shape, dtype)
    assert refusal is None if problem is None else problem in refusal
