"""The experiment page's chart data: the first draw as JSON (downsampled) and the full series as a CSV download."""
from collections.abc import AsyncIterator, Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors
from webapp.api import schema

NAME_MAX_LENGTH = 200


class ExperimentSeries(APIView):
    @schema.series
    def get(self, request, experiment_id):
        return Response(selectors.experiment_series_for(user=request.user, experiment_id=experiment_id))


class ExperimentSeriesCsv(APIView):
    """Every point of every series (or of `?name=`), streamed in seq order; an unknown name gives just the header."""

    @schema.series_csv
    def get(self, request, experiment_id):
        name = request.query_params.get("name") or None
        if name is not None and len(name) > NAME_MAX_LENGTH:
            raise ApiValidationError({"name": f"A series name has at most {NAME_MAX_LENGTH} characters."})
        pieces = selectors.experiment_series_csv_for(user=request.user, experiment_id=experiment_id, name=name)
        response = StreamingHttpResponse(_servable(request, pieces), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="experiment-{experiment_id}-series.csv"'
        return response

    def perform_content_negotiation(self, request, force=False):
        # A client that accepts only text/csv still gets its 404 or 400, rendered as JSON, not a 406.
        return super().perform_content_negotiation(request, force=True)


def _servable(request, pieces: Iterator[str]) -> Iterable[str] | AsyncIterator[str]:
    """Under ASGI Django reads a sync iterator whole into a list before sending; an async one streams."""
    return _async_pieces(pieces) if isinstance(request._request, ASGIRequest) else pieces


async def _async_pieces(pieces: Iterator[str]) -> AsyncIterator[str]:
    # Each piece's query runs in the request's own sync thread, as any ORM call of the view would.
    take = sync_to_async(next)
    while (piece := await take(pieces, None)) is not None:
        yield piece
