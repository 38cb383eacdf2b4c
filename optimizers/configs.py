"""Recipe configs by name (standard library only: the web process validates forms and API input with them).

Each recipe's settings live in its own `optimizers/config_<recipe>.py`, built on `optimizers.settings`.
"""
from typing import Any

from optimizers.config_prune import PruneConfig
from optimizers.config_quantize import QuantizeConfig
from optimizers.errors import ConfigError
from optimizers.settings import INTEGERS, RecipeConfig, Settings, setting

__all__ = ["ConfigError", "INTEGERS", "Settings", "RecipeConfig", "setting", "QuantizeConfig", "PruneConfig",
           "RECIPE_CONFIGS", "parse_config"]

RECIPE_CONFIGS: dict[str, type[RecipeConfig]] = {"quantize": QuantizeConfig, "prune": PruneConfig}


def parse_config(recipe: str, data: Any) -> RecipeConfig:
    """Validate a recipe name and its settings; raise ConfigError naming the bad field."""
    if not isinstance(recipe, str) or recipe not in RECIPE_CONFIGS:
        raise ConfigError("recipe", f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_CONFIGS)}")
    return RECIPE_CONFIGS[recipe].from_dict(data)
