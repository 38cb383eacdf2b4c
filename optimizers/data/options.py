"""Dataset kinds and their options, checked before a job is queued. Standard library only.

Bad options are the user's to fix, so they raise ConfigError naming the option (a form shows it
next to the field); `parse_dataset_options` returns them in a normal, JSON-ready form.
"""

import re
from typing import Any

from optimizers.data import limits
from optimizers.errors import ConfigError

DATASET_KINDS = ("npz", "csv", "images", "digits", "text")
CSV_DELIMITERS = (",", ";", "\t", "|")
# A text dataset's file: one text a line, one JSON object a line, or a CSV with a text column.
TEXT_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv"}
DEFAULT_TEXT_COLUMN = "text"
_OPTIONS = {"npz": (), "csv": ("label_column", "delimiter"), "images": ("image_size",), "digits": (),
            "text": ("format", "text_column", "label_column", "delimiter", "sequence_length")}
_SIZE_TEXT = re.compile(r"\s*([0-9]+)\s*(?:[x,]\s*([0-9]+)\s*)?")


def parse_dataset_options(kind: Any, options: Any) -> dict[str, Any]:
    if kind not in DATASET_KINDS:
        raise ConfigError("dataset_kind", f"must be one of {', '.join(DATASET_KINDS)}; got {kind!r}")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError("dataset_options", f"must be an object; got {type(options).__name__}")
    allowed = _OPTIONS[kind]
    parsed = {}
    for name, value in options.items():
        if name not in allowed:
            choices = ", ".join(allowed) or "none"
            raise ConfigError(str(name), f"is not an option of {kind} datasets (options: {choices})")
        parsed[name] = _PARSERS[name](name, value)
    return parsed


def text_format_of(file_name: str) -> str | None:
    """The text format a file name's extension says (".jsonl" -> "jsonl"), or None."""
    dot = file_name.rfind(".")
    return TEXT_FORMATS.get(file_name[dot:].lower()) if dot > 0 else None


def _label_column(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ConfigError(name, f"must be a column name of 1 to 200 characters; got {value!r}")
    return value.strip()


def _delimiter(name: str, value: Any) -> str:
    if value not in CSV_DELIMITERS:
        raise ConfigError(name, f"must be one of {', '.join(map(repr, CSV_DELIMITERS))}; got {value!r}")
    return value


def _image_size(name: str, value: Any) -> list[int]:
    """An int (square), [height, width], or text "32" / "32x48" (height x width) from a form."""
    if isinstance(value, str) and (match := _SIZE_TEXT.fullmatch(value)):
        value = [int(match[1]), int(match[2] or match[1])]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    side = limits.MAX_IMAGE_SIDE
    if (not isinstance(value, list | tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not 4 <= v <= side for v in value)):
        raise ConfigError(name, f"must be a size from 4 to {side} pixels, or height x width; got {value!r}")
    return [int(value[0]), int(value[1])]


def _text_format(name: str, value: Any) -> str:
    formats = tuple(TEXT_FORMATS.values())
    if value not in formats:
        raise ConfigError(name, f"must be one of {', '.join(formats)} (a .txt of one text a line, a .jsonl of one "
                                f"object a line, or a .csv); got {value!r}")
    return value


def _sequence_length(name: str, value: Any) -> int:
    """Tokens per row (encoders) or per block (decoders); text from a form ("256") is accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    low, high = limits.MIN_SEQUENCE_LENGTH, limits.MAX_SEQUENCE_LENGTH
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"must be a whole number of tokens from {low} to {high}; got {value!r}")
    return value


_PARSERS = {"label_column": _label_column, "text_column": _label_column, "delimiter": _delimiter,
            "image_size": _image_size, "format": _text_format, "sequence_length": _sequence_length}
