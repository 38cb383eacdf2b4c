"""Importing this package registers every recipe with `optimizers.registry`."""

from optimizers.recipes.distill import recipe as distill_recipe  # noqa: F401 - imported for its registration
from optimizers.recipes.parallelize import recipe as parallelize_recipe  # noqa: F401 - imported for its registration
from optimizers.recipes.prune import recipe as prune_recipe  # noqa: F401 - imported for its registration
from optimizers.recipes.quantize import recipe as quantize_recipe  # noqa: F401 - imported for its registration
