"""Recipe settings: frozen dataclasses that validate themselves and serialize to JSON.

Standard library only: the web process validates form and API input with these before anything
is queued, and it must not import torch. Each field carries its help text and, where it has a
fixed set of values, its choices, so forms are generated from the same source of truth.
"""

import dataclasses
from typing import Any, ClassVar, Self

from optimizers.errors import ConfigError

__all__ = ["ConfigError", "RecipeConfig", "QuantizeConfig", "RECIPE_CONFIGS", "parse_config"]

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def setting(default: Any, help: str, choices: tuple | None = None, **limits: Any) -> Any:
    """Declare a config field with its help text, and optionally choices or min/max limits."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, **limits})


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """Base of every recipe's settings; subclasses only declare fields with `setting(...)`."""

    recipe: ClassVar[str] = ""

    def __post_init__(self) -> None:
        # Validating here (not only in from_dict) means no invalid config object can exist.
        for spec in dataclasses.fields(self):
            _check_value(spec, getattr(self, spec.name))

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ConfigError("config", f"must be an object of settings; got {type(data).__name__}")
        allowed = [spec.name for spec in dataclasses.fields(cls)]
        for key in data:
            if key not in allowed:
                raise ConfigError(str(key), f"unknown setting; allowed: {', '.join(allowed)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe_fields(cls) -> list[dict[str, Any]]:
        """What a form needs to draw each setting: name, type, default, help, choices (and limits)."""
        described = []
        for spec in dataclasses.fields(cls):
            entry = {
                "name": spec.name,
                "type": _TYPE_NAMES[spec.type],
                "default": spec.default,
                "help": spec.metadata["help"],
                "choices": list(spec.metadata["choices"]) if spec.metadata["choices"] else None,
            }
            entry.update({k: spec.metadata[k] for k in ("min", "max") if k in spec.metadata})
            described.append(entry)
        return described


def _check_value(spec: dataclasses.Field, value: Any) -> None:
    expected = spec.type
    # bool is a subclass of int, and JSON 1 or "yes" must not pass as a switch: check exactly.
    if expected is bool:
        type_ok = isinstance(value, bool)
    elif expected is float:
        type_ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        type_ok = isinstance(value, expected) and not isinstance(value, bool)
    if not type_ok:
        raise ConfigError(spec.name, f"must be a {_TYPE_NAMES[expected]}; got {value!r}")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(spec.name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    if "min" in spec.metadata and value < spec.metadata["min"]:
        raise ConfigError(spec.name, f"must be at least {spec.metadata['min']}; got {value!r}")
    if "max" in spec.metadata and value > spec.metadata["max"]:
        raise ConfigError(spec.name, f"must be at most {spec.metadata['max']}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class QuantizeConfig(RecipeConfig):
    recipe: ClassVar[str] = "quantize"

    variant: str = setting(
        "dynamic_int8",
        "How to quantize. dynamic_int8: int8 weights; activations are quantized on the fly "
        "(TorchScript) or stay float (torch.export models, weight-only).",
        choices=("dynamic_int8",),
    )
    per_channel: bool = setting(
        True,
        "One weight scale per output channel instead of one per layer: more accurate, "
        "a few bytes larger.",
    )
    layers: str = setting(
        "linear",
        "Which layers to quantize. linear: fully connected (nn.Linear) layers.",
        choices=("linear",),
    )


RECIPE_CONFIGS: dict[str, type[RecipeConfig]] = {"quantize": QuantizeConfig}


def parse_config(recipe: str, data: Any) -> RecipeConfig:
    """Validate a recipe name and its settings; raise ConfigError naming the bad field."""
    if not isinstance(recipe, str) or recipe not in RECIPE_CONFIGS:
        raise ConfigError("recipe", f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_CONFIGS)}")
    return RECIPE_CONFIGS[recipe].from_dict(data)
