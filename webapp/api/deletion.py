"""DELETE on one model, dataset or experiment, and POST .../delete/ {"ids": [...]} for several at once."""
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api import schema
from webapp.services import deletion

MAX_IDS = 500


def delete_or_refuse(delete, *, user, ids: list[int]) -> Response:
    """204 when `delete` removed them all; 404 naming nothing of anyone else's; 409 with the reasons when work
    still uses one of them (then nothing is deleted)."""
    try:
        delete(user=user, ids=ids)
    except ObjectDoesNotExist:
        raise NotFound() from None
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ApiValidationError(exc.message_dict) from None
        return Response({"detail": exc.messages[0]}, status=status.HTTP_409_CONFLICT)
    return Response(status=status.HTTP_204_NO_CONTENT)


def _ids(request) -> list[int]:
    ids = request.data.get("ids") if isinstance(request.data, dict) else None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS or \
            not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ApiValidationError({"ids": f"Give a list of 1 to {MAX_IDS} ids."})
    return ids


class _BulkDelete(APIView):
    parser_classes = [JSONParser]
    delete_function = None

    @schema.bulk_delete
    def post(self, request):
        return delete_or_refuse(type(self).delete_function, user=request.user, ids=_ids(request))


class ModelsDelete(_BulkDelete):
    delete_function = staticmethod(deletion.models_delete)


class DatasetsDelete(_BulkDelete):
    delete_function = staticmethod(deletion.datasets_delete)


class ExperimentsDelete(_BulkDelete):
    delete_function = staticmethod(deletion.experiments_delete)
