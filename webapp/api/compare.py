"""GET /api/compare/?ids=1,2,3: the compare page's data (reports side by side, Pareto fronts), owners only."""
from django.core.exceptions import ValidationError
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors
from webapp.api import schema
from webapp.selectors.filters import compare_ids


class Compare(APIView):
    @schema.compare
    def get(self, request):
        try:
            ids = compare_ids(request.query_params)
        except ValidationError as exc:
            raise ApiValidationError(exc.message_dict) from None
        return Response(selectors.comparison_for(user=request.user, ids=ids, link=request.build_absolute_uri))
