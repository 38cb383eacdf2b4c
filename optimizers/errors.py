"""Every error type a job can end with.

Standard library only, so the web process can import these without torch. Each subclass is an
error the user can act on; the sandbox reports its class name as `error_type`.
"""


class SlimforgeError(Exception):
    """Base of the errors that carry a message meant for the user."""


class ConfigError(SlimforgeError, ValueError):
    """A recipe setting is wrong; `field` names it so a form can show the message next to it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelFileError(SlimforgeError):
    """The uploaded file is not a model we can load (wrong format, truncated, corrupt)."""


class ModelInputError(SlimforgeError):
    """The model loaded but rejected the example input the user described."""


class RecipeError(SlimforgeError):
    """The recipe cannot be applied to this model (for example: nothing to quantize)."""


class SpecError(SlimforgeError):
    """The job specification handed to the sandbox is malformed (a bug on the calling side)."""


class Cancelled(SlimforgeError):
    """The user cancelled the job; raised between steps, never in the middle of one."""

    def __init__(self, message: str = "the job was cancelled"):
        super().__init__(message)


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message; torch's messages run to pages."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1][:300]  # the interpreter puts its traceback first and the real reason last
    return lines[0][:300]
