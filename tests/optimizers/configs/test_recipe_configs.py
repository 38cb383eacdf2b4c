import dataclasses

import pytest

from optimizers.configs import RECIPE_CONFIGS, ConfigError, QuantizeConfig, parse_config


def field_of(error_info) -> str:
    return error_info.value.field


def test_defaults_are_per_channel_dynamic_int8_without_a_budget():
    assert QuantizeConfig().to_dict() == {"variant": "dynamic_int8", "per_channel": True, "group_size": 32,
                                          "layers": "auto",
                                          "calibration_samples": 256, "budget_metric": "none", "budget_min": 0.99,
                                          "budget_samples": 256}


def test_from_dict_round_trips_through_to_dict():
    config = QuantizeConfig.from_dict({"per_channel": False})
    assert config.per_channel is False
    assert QuantizeConfig.from_dict(config.to_dict()) == config


def test_unknown_setting_names_the_key_and_lists_allowed():
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict({"bits": 4})
    assert caught.value.field == "bits"
    assert str(caught.value) == ("bits: unknown setting; allowed: variant, per_channel, group_size, layers, "
                                 "calibration_samples, budget_metric, budget_min, budget_samples")


@pytest.mark.parametrize("value", [1, 0, "yes", "true", None])
def test_boolean_setting_needs_a_real_boolean(value):
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict({"per_channel": value})
    assert field_of(caught) == "per_channel"
    assert "must be a boolean" in caught.value.message


def test_wrong_type_for_a_string_setting_names_field_and_type():
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict({"variant": 8})
    assert str(caught.value) == "variant: must be a string; got 8"


@pytest.mark.parametrize("field, value", [("variant", "static_int4"), ("layers", "conv")])
def test_bad_choice_lists_the_choices(field, value):
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict({field: value})
    assert field_of(caught) == field
    assert "must be one of" in caught.value.message and repr(value) in caught.value.message


def test_direct_construction_validates_too():
    with pytest.raises(ConfigError, match="per_channel"):
        QuantizeConfig(per_channel="yes")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        QuantizeConfig().per_channel = False


@pytest.mark.parametrize("data", [None, [], "per_channel=true"])
def test_settings_must_be_an_object(data):
    with pytest.raises(ConfigError) as caught:
        QuantizeConfig.from_dict(data)
    assert field_of(caught) == "config"


def test_parse_config_dispatches_by_recipe_name():
    assert parse_config("quantize", {"per_channel": False}) == QuantizeConfig(per_channel=False)


@pytest.mark.parametrize("recipe", ["shrink", "", None])
def test_unknown_recipe_is_a_recipe_field_error_listing_known_ones(recipe):
    with pytest.raises(ConfigError) as caught:
        parse_config(recipe, {})
    assert field_of(caught) == "recipe"
    assert "known: quantize" in caught.value.message


def test_config_error_is_a_value_error_for_callers_that_catch_those():
    assert issubclass(ConfigError, ValueError)


def test_describe_fields_gives_forms_everything_they_need():
    described = {entry["name"]: entry for entry in RECIPE_CONFIGS["quantize"].describe_fields()}
    assert list(described)[:4] == ["variant", "per_channel", "group_size", "layers"]
    assert described["per_channel"] == {
        "name": "per_channel",
        "type": "boolean",
        "default": True,
        "help": described["per_channel"]["help"],
        "choices": None,
    }
    assert "per output channel" in described["per_channel"]["help"]
    assert described["variant"]["choices"][0] == "dynamic_int8" and "static_int8" in described["variant"]["choices"]
    assert described["layers"]["type"] == "string" and described["layers"]["default"] == "auto"
