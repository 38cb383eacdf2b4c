"""How a service's ValidationError becomes the API's 400: the fields it names, or a plain detail."""
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from rest_framework.exceptions import APIException, NotFound, ParseError
from rest_framework.exceptions import ValidationError as ApiValidationError


def api_errors(exc: ValidationError) -> ApiValidationError:
    return ApiValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


def label_or_refuse(label, request, **target):
    """A PATCH of name, notes or tags through a labels service: 404 for anything not the user's, 400 naming the
    field."""
    if not isinstance(request.data, dict):
        raise ParseError("Give a JSON object with any of name, notes and tags.")
    try:
        return label(user=request.user, **target, changes=dict(request.data.items()))
    except ObjectDoesNotExist:
        raise NotFound() from None
    except ValidationError as exc:
        raise api_errors(exc) from None


class Conflict(APIException):
    """409 {"detail": why}: the thing exists but the action does not fit its state (cancel what already ended)."""

    status_code = 409
    default_code = "conflict"


def act_or_refuse(action, **kwargs):
    """`action(**kwargs)`, a service acting on one of the user's things: 404 for anything not theirs, 409 with the
    reason when it cannot be done now."""
    try:
        return action(**kwargs)
    except ObjectDoesNotExist:
        raise NotFound() from None
    except ValidationError as exc:
        raise Conflict(exc.messages[0]) from None
