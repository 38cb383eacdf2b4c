"""GET/POST /api/models/ and GET /api/models/{id}/: a user's uploaded models."""
from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors, services
from webapp.api import schema
from webapp.api.deletion import delete_or_refuse
from webapp.api.errors import api_errors, label_or_refuse
from webapp.api.serializers import ModelOut
from webapp.services import deletion, labels


class ModelListCreate(APIView):
    serializer_class = ModelOut  # what the OpenAPI schema documents
    parser_classes = [MultiPartParser, FormParser]

    @schema.listing("models")
    def get(self, request):
        models = selectors.model_list_for(user=request.user)
        return Response(ModelOut(models, many=True).data)

    def post(self, request):
        try:
            model = services.model_create(
                owner=request.user, upload=request.FILES.get("file"), name=request.data.get("name", ""),
                input_shape=request.data.get("input_shape", ""),
                input_dtype=request.data.get("input_dtype") or "float32",
                architecture=request.data.get("architecture", ""),
                architecture_config=request.data.get("architecture_config"),
            )
        except ValidationError as exc:
            raise api_errors(exc) from None
        return Response(ModelOut(model).data, status=status.HTTP_201_CREATED)


class ModelDetail(APIView):
    serializer_class = ModelOut
    def get(self, request, model_id):
        return Response(ModelOut(selectors.model_get_for(user=request.user, model_id=model_id)).data)

    def patch(self, request, model_id):
        """Rename the model, or change its `notes` or `tags`."""
        return Response(ModelOut(label_or_refuse(labels.model_label, request, model_id=model_id)).data)

    def delete(self, request, model_id):
        """204: the model, its file, its experiments and their artifacts are gone; 409 while work uses it."""
        return delete_or_refuse(deletion.models_delete, user=request.user, ids=[model_id])
