"""Recipes by name: each registers itself with its config type when `optimizers.recipes` loads.

The web process finds config types in `optimizers.configs.RECIPE_CONFIGS` (no torch); workers
find the functions here. `register` refuses a config type that disagrees with that table, so
the two can never drift apart.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from optimizers.configs import RECIPE_CONFIGS, RecipeConfig
from optimizers.errors import ConfigError
from optimizers.reporters import Reporter


@dataclass
class RecipeResult:
    model: nn.Module
    backend: str  # what actually did the work, for the report: "torch.ao quantize_dynamic_jit ..."
    notes: list[str] = field(default_factory=list)
    # The format to save first when the upload's format cannot hold the result (int8 packed weights
    # do not fit a float state dict); None keeps the upload's format.
    primary_format: str | None = None
    # Recipe-specific findings for report.json and the page (sensitivity per layer, layers kept float, ...).
    extras: dict[str, Any] = field(default_factory=dict)
    # Files beside the model files, by name (e.g. the compressed sparse state dict of a pruned model).
    extra_files: dict[str, bytes] = field(default_factory=dict)
    # {"name", "config"} of the result when it is another built-in architecture than the upload's (a distilled
    # student): its safetensors file is written and read back with it. None: the upload's architecture.
    architecture: dict[str, Any] | None = None


RecipeFunction = Callable[[nn.Module, Any, RecipeConfig, Reporter], RecipeResult]
# Says whether a recipe can do anything for a model, and why (shown on the model page).
ApplicabilityCheck = Callable[[nn.Module], tuple[bool, str]]


@dataclass(frozen=True)
class Recipe:
    name: str
    config_type: type[RecipeConfig]
    run: RecipeFunction
    applies_to: ApplicabilityCheck
    # {variant: {"applicable", "reason"}} for the config field named by the config type's `variant_field`
    variants: Callable[[Any], dict[str, dict[str, Any]]] | None = None


_RECIPES: dict[str, Recipe] = {}


def _always_applies(model: nn.Module) -> tuple[bool, str]:
    return True, "applies to any model"


def register(name: str, config_type: type[RecipeConfig], applies_to: ApplicabilityCheck | None = None,
             variants: Callable[[Any], dict[str, dict[str, Any]]] | None = None):
    """Decorator: `@register("quantize", QuantizeConfig, applies_to=check)` over the recipe function."""
    if RECIPE_CONFIGS.get(name) is not config_type:
        raise TypeError(f"recipe {name!r} must use the config type listed in RECIPE_CONFIGS")

    def decorate(function: RecipeFunction) -> RecipeFunction:
        if name in _RECIPES and _RECIPES[name].run is not function:
            raise ValueError(f"recipe {name!r} is registered twice")
        _RECIPES[name] = Recipe(name, config_type, function, applies_to or _always_applies, variants)
        return function

    return decorate


def get_recipe(name: str) -> Recipe:
    if name not in _RECIPES:
        raise ConfigError("recipe", f"unknown recipe {name!r}; known: {', '.join(sorted(_RECIPES))}")
    return _RECIPES[name]


def recipe_names() -> list[str]:
    return sorted(_RECIPES)




def applicability(model: Any) -> dict[str, dict[str, Any]]:
    """{"quantize": {"applicable": bool, "reason": str}, ...} for every registered recipe."""
    report = {}
    for name, recipe in sorted(_RECIPES.items()):
        applicable, reason = recipe.applies_to(model)  # each recipe answers for ONNX models too
        report[name] = {"applicable": applicable, "reason": reason}
        if applicable and recipe.variants is not None:
            report[name]["variants"] = recipe.variants(model)
    return report
