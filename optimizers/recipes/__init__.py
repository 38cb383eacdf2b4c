"""Importing this package registers every recipe with `optimizers.registry`."""

from optimizers.recipes import (
    prune,  # noqa: F401
    quantize,  # noqa: F401 - imported for its registration
)
