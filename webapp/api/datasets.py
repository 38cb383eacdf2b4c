"""GET/POST /api/datasets/, one dataset, and its preview images."""
import json

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors, services
from webapp.api import schema
from webapp.api.deletion import delete_or_refuse
from webapp.api.downloads import stored_file
from webapp.api.errors import api_errors
from webapp.api.serializers import DatasetOut
from webapp.services import deletion


class DatasetListCreate(APIView):
    serializer_class = DatasetOut  # what the OpenAPI schema documents
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @schema.listing("datasets")
    def get(self, request):
        datasets = selectors.dataset_list_for(user=request.user).prefetch_related("files")
        return Response(DatasetOut(datasets, many=True).data)

    def post(self, request):
        try:
            dataset = services.dataset_create(
                owner=request.user, name=request.data.get("name", ""), kind=request.data.get("kind", ""),
                upload=request.FILES.get("file"), options=_options(request.data.get("options")),
            )
        except ValidationError as exc:
            raise api_errors(exc) from None
        return Response(DatasetOut(dataset).data, status=status.HTTP_201_CREATED)


def _options(raw):
    """Options come as a JSON object (JSON body) or a JSON string (multipart form)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ApiValidationError({"options": "must be a JSON object"}) from None
    if not isinstance(raw, dict):
        raise ApiValidationError({"options": "must be a JSON object"})
    return raw


class DatasetDetail(APIView):
    serializer_class = DatasetOut
    def get(self, request, dataset_id):
        return Response(DatasetOut(selectors.dataset_get_for(user=request.user, dataset_id=dataset_id)).data)

    def delete(self, request, dataset_id):
        return delete_or_refuse(deletion.datasets_delete, user=request.user, ids=[dataset_id])


class DatasetPreview(APIView):
    @schema.preview
    def get(self, request, dataset_id, name):
        preview = selectors.dataset_preview_for(user=request.user, dataset_id=dataset_id, name=name)
        return stored_file(preview.file, content_type="image/png")
