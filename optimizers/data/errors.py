"""The one error a dataset job ends with when the upload is at fault. Standard library only."""

from optimizers.errors import SlimforgeError


class DatasetError(SlimforgeError):
    """The uploaded dataset cannot be used: malformed, hostile or past a limit. The message says which."""
