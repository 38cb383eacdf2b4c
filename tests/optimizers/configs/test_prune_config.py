"""PruneConfig: defaults, per-method help, the combination rule and the dataset requirement (stdlib only)."""
import pytest

from optimizers.configs.finetune import FineTuneSettings
from optimizers.configs.prune import METHODS, PruneConfig
from optimizers.errors import ConfigError


def test_defaults_prune_80_percent_unstructured_and_fine_tune():
    config = PruneConfig()
    assert (config.method, config.target_sparsity, config.ignore_classifier) == ("unstructured", 0.8, True)
    assert isinstance(config, FineTuneSettings) and config.to_train_settings().epochs == config.epochs


def test_every_field_has_help_and_the_method_lists_its_choices():
    fields = {field["name"]: field for field in PruneConfig.describe_fields()}
    assert all(field["help"] for field in fields.values())
    assert fields["method"]["choices"] == list(METHODS)
    assert all(method in fields["method"]["help"] for method in METHODS)
    assert (fields["target_sparsity"]["min"], fields["target_sparsity"]["max"]) == (0.05, 0.99)


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError) as error:
        PruneConfig.from_dict({"method": "random"})
    assert error.value.field == "method"
    with pytest.raises(ConfigError) as error:
        PruneConfig.from_dict({"target_sparsity": 1.5})
    assert error.value.field == "target_sparsity"


def test_structured_needs_a_target_below_one():
    with pytest.raises(ConfigError, match="needs a target below 1") as error:
        PruneConfig.from_dict({"method": "structured", "target_macs_ratio": 1.0})
    assert error.value.field == "target_macs_ratio"
    assert PruneConfig.from_dict({"method": "structured", "target_macs_ratio": 1.0, "target_params_ratio": 0.5})


def test_every_method_needs_a_labelled_dataset():
    for method in METHODS:
        assert "labelled dataset" in PruneConfig(method=method).needs_dataset()


def test_the_config_round_trips_through_json_shaped_dicts():
    config = PruneConfig.from_dict({"method": "structured", "importance": "taylor", "epochs": 2})
    assert PruneConfig.from_dict(config.to_dict()) == config
