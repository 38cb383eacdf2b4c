"""How a service's ValidationError becomes the API's 400: the fields it names, or a plain detail."""
from django.core.exceptions import ValidationError
from rest_framework.exceptions import ValidationError as ApiValidationError


def api_errors(exc: ValidationError) -> ApiValidationError:
    return ApiValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
