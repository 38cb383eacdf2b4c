"""Recipe configs by name (standard library only: the web process validates forms and API input with them).

Each recipe has its own module here (`quantize`, `prune`, and `finetune` for the recipes that train), built on
the self-validating dataclasses of `base`.
"""
from typing import Any

from optimizers.configs.base import INTEGERS, RecipeConfig, Settings, setting
from optimizers.configs.distill import DistillConfig
from optimizers.configs.parallelize import ParallelizeConfig
from optimizers.configs.prune import PruneConfig
from optimizers.configs.quantize import QuantizeConfig
from optimizers.errors import ConfigError

__all__ = ["ConfigError", "INTEGERS", "Settings", "RecipeConfig", "setting", "QuantizeConfig", "PruneConfig",
           "DistillConfig", "ParallelizeConfig", "RECIPE_CONFIGS", "parse_config"]

RECIPE_CONFIGS: dict[str, type[RecipeConfig]] = {"quantize": QuantizeConfig, "prune": PruneConfig,
                                                  "distill": DistillConfig, "parallelize": ParallelizeConfig}


def parse_config(recipe: str, data: Any) -> RecipeConfig:
    """Validate a recipe name and its settings; raise ConfigError naming the bad field."""
    if not isinstance(recipe, str) or recipe not in RECIPE_CONFIGS:
        raise ConfigError("recipe", f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_CONFIGS)}")
    return RECIPE_CONFIGS[recipe].from_dict(data)
