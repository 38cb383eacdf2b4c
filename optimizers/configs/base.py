"""Settings types: frozen dataclasses that validate themselves and serialize to JSON (the shared base).

Standard library only: the web process validates form and API input with these before anything
is queued, and it must not import torch. Each field carries its help text and, where it has a
fixed set of values, its choices, so forms are generated from the same source of truth.
`Settings` is the shared base of recipe configs (this package) and architecture configs (`optimizers.zoo`).
"""

import dataclasses
import re
from typing import Any, ClassVar, Self

from optimizers.errors import ConfigError

__all__ = ["ConfigError", "INTEGERS", "Settings", "RecipeConfig", "setting"]

# The annotation of a field holding several integers (ResNet's blocks per stage, an MLP's widths).
INTEGERS = tuple[int, ...]
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", INTEGERS: "integers"}
_INTEGERS_TEXT = re.compile(r"\s*-?[0-9]+\s*(,\s*-?[0-9]+\s*)*")
_LIMIT_KEYS = ("min", "max", "min_items", "max_items")


def setting(default: Any, help: str, choices: tuple | None = None, **limits: Any) -> Any:
    """Declare a config field with its help text, and optionally choices or limits.

    Limits: min / max (for integer lists: of each item), min_items / max_items (integer lists).
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, **limits})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every settings type; subclasses declare fields with `setting(...)`.

    A subclass may override `check_combination` for rules that involve several fields.
    """

    def __post_init__(self) -> None:
        # Validating here (not only in from_dict) means no invalid config object can exist.
        for spec in dataclasses.fields(self):
            value = _normalized(spec, getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)  # frozen: the only way to store the normal form
        self.check_combination()

    def check_combination(self) -> None:
        """Raise ConfigError(field, ...) when fields are fine alone but not together."""

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
        # Lists, not tuples: the JSON a job spec stores reads back equal to this.
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def describe_fields(cls) -> list[dict[str, Any]]:
        """What a form needs to draw each setting: name, type, default, help, choices (and limits).

        Integer lists are described as type "integers" with a text default such as "2,2,2,2",
        which is also what `from_dict` accepts back from a text box.
        """
        described = []
        for spec in dataclasses.fields(cls):
            default = spec.default
            entry = {
                "name": spec.name,
                "type": _TYPE_NAMES[spec.type],
                "default": ",".join(map(str, default)) if spec.type is INTEGERS else default,
                "help": spec.metadata["help"],
                "choices": list(spec.metadata["choices"]) if spec.metadata["choices"] else None,
            }
            entry.update({k: spec.metadata[k] for k in _LIMIT_KEYS if k in spec.metadata})
            described.append(entry)
        return described


@dataclasses.dataclass(frozen=True)
class RecipeConfig(Settings):
    """Base of every recipe's settings."""

    recipe: ClassVar[str] = ""
    # The field that picks how the recipe works (quantize: variant, prune: method); the model page lists which
    # of its values apply to a model, and the web refuses one that does not before anything is queued.
    variant_field: ClassVar[str | None] = None

    def needs_dataset(self) -> str | None:
        """Why these settings need a dataset with labels (calibration, fine-tuning), or None when they do not.

        The web refuses such an experiment without a dataset before anything is queued.
        """
        return None

    def needs_labels(self) -> bool:
        """Whether the dataset must have labels (fine-tuning does; calibration does not)."""
        return False

    def check_model(self, *, input_shape: tuple[int, ...], input_dtype: str, output_shape: list[int] | None) -> None:
        """Raise ConfigError when these settings cannot work for a model with this input and output (known from its
        inspection), so the web refuses them before anything is queued."""

    def referenced_models(self) -> dict[str, int]:
        """Other uploaded models these settings name, by role ({"student": 12}): the web checks that the user owns
        each and that it is ready; the worker hands each to the job beside the uploaded model."""
        return {}


def _normalized(spec: dataclasses.Field, value: Any) -> Any:
    """Check a field's value and return its normal form (ints as floats for numbers, tuples for lists)."""
    if spec.type is INTEGERS:
        return _integers(spec, value)
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
    if expected is float and value != value:  # NaN passes every min/max comparison
        raise ConfigError(spec.name, "must be a number; got nan")
    choices = spec.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(spec.name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    _check_limits(spec.name, spec.metadata, value)
    return float(value) if expected is float else value


def _check_limits(name: str, metadata: dict, value: Any) -> None:
    if "min" in metadata and value < metadata["min"]:
        raise ConfigError(name, f"must be at least {metadata['min']}; got {value!r}")
    if "max" in metadata and value > metadata["max"]:
        raise ConfigError(name, f"must be at most {metadata['max']}; got {value!r}")


def _integers(spec: dataclasses.Field, value: Any) -> tuple[int, ...]:
    """Accept a list or tuple of ints, or the text a form sends ("2,2,2,2"); return a tuple."""
    name, metadata = spec.name, spec.metadata
    if isinstance(value, str):
        if value.strip() and not _INTEGERS_TEXT.fullmatch(value):
            raise ConfigError(name, f"must be comma-separated integers, e.g. {_example(spec)}; got {value!r}")
        value = [int(part) for part in value.split(",")] if value.strip() else []
    if not isinstance(value, list | tuple):
        raise ConfigError(name, f"must be a list of integers, e.g. {_example(spec)}; got {value!r}")
    if any(isinstance(item, bool) or not isinstance(item, int) for item in value):
        raise ConfigError(name, f"must contain integers only; got {list(value)!r}")
    low, high = metadata.get("min_items", 0), metadata.get("max_items")
    if len(value) < low or (high is not None and len(value) > high):
        count = f"exactly {low}" if low == high else f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(name, f"must have {count} items; got {len(value)}")
    for item in value:
        _check_limits(name, metadata, item)
    return tuple(value)


def _example(spec: dataclasses.Field) -> str:
    return ",".join(map(str, spec.default)) or "1,2"
