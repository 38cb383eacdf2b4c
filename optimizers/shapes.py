"""Parse and check the example input a user describes (shape and dtype).

Standard library only: the web process validates forms with it and must not import torch.
"""

import math
import re
from collections.abc import Sequence

MAX_DIMS = 6
MAX_DIM_SIZE = 65536
# Bounds the example tensor the worker allocates (200 MB as float32), whatever the user typed.
MAX_ELEMENTS = 50_000_000

SUPPORTED_DTYPES = ("float32", "float16", "bfloat16", "int64")

# Public, with the limits above: the upload page checks a shape with these same rules before sending a file.
DIMS_PATTERN = r"\s*[0-9]+\s*(,\s*[0-9]+\s*)*"
_DIMS_TEXT = re.compile(DIMS_PATTERN)


def parse_input_shape(text: str) -> tuple[int, ...]:
    """Turn "1, 3, 32, 32" into (1, 3, 32, 32), or raise ValueError saying what is wrong."""
    if not isinstance(text, str) or not _DIMS_TEXT.fullmatch(text):
        raise ValueError(
            f"input shape must be comma-separated positive integers, e.g. 1,3,32,32; got {text!r}"
        )
    return check_input_shape([int(part) for part in text.split(",")])


def check_input_shape(dims: Sequence[int]) -> tuple[int, ...]:
    """Check an already-split shape (a JSON list, say) against the same limits as the text form."""
    if isinstance(dims, str | bytes) or not isinstance(dims, Sequence):
        raise ValueError(f"input shape must be a list of positive integers; got {dims!r}")
    # bool is an int in Python, but `true` in a JSON shape is a mistake, not a 1.
    if any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise ValueError(f"input shape must contain integers only; got {list(dims)!r}")
    if not 1 <= len(dims) <= MAX_DIMS:
        raise ValueError(f"input shape must have 1 to {MAX_DIMS} dimensions; got {len(dims)}")
    for position, size in enumerate(dims):
        if size < 1:
            raise ValueError(f"input shape dimension {position} must be at least 1; got {size}")
        if size > MAX_DIM_SIZE:
            raise ValueError(
                f"input shape dimension {position} must be at most {MAX_DIM_SIZE}; got {size}"
            )
    elements = math.prod(dims)
    if elements > MAX_ELEMENTS:
        raise ValueError(
            f"input shape has {elements:,} elements; the limit is {MAX_ELEMENTS:,} "
            "(use a batch of 1 and the model's real input size)"
        )
    return tuple(dims)


def parse_dtype(name: str) -> str:
    """Return the dtype name if supported, else raise ValueError listing the choices."""
    if name not in SUPPORTED_DTYPES:
        raise ValueError(f"input dtype must be one of {', '.join(SUPPORTED_DTYPES)}; got {name!r}")
    return name


def format_shape(dims: Sequence[int]) -> str:
    """Write a shape the way users typed it, for messages: [1,3,32,32]."""
    return "[" + ",".join(str(d) for d in dims) + "]"
