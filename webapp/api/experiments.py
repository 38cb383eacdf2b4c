"""GET/POST /api/experiments/, one experiment, its events and its artifacts' downloads."""
import tempfile

from django.core.exceptions import ValidationError
from django.http import FileResponse
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors, services
from webapp.api import schema
from webapp.api.deletion import delete_or_refuse
from webapp.api.downloads import stored_file
from webapp.api.errors import act_or_refuse, api_errors, label_or_refuse
from webapp.api.serializers import ExperimentOut
from webapp.selectors import bundle
from webapp.selectors.filters import experiment_filters
from webapp.services import deletion, labels

BUNDLE_IN_MEMORY_BYTES = 16 * 1024 * 1024  # a larger bundle is spooled to a temporary file


class ExperimentPages(LimitOffsetPagination):
    max_limit = 200  # ?limit= beyond this gets this many: one request must not serialize thousands of summaries


class ExperimentListCreate(APIView):
    serializer_class = ExperimentOut  # what the OpenAPI schema documents
    parser_classes = [JSONParser]

    @schema.experiment_listing()
    def get(self, request):
        """One page ({count, next, previous, results}) of the experiments the list page's filters select, in the
        list page's order."""
        try:
            filters = experiment_filters(request.query_params)
        except ValidationError as exc:
            raise api_errors(exc) from None
        experiments = selectors.experiment_search_for(user=request.user, **filters).prefetch_related("artifacts")
        pages = ExperimentPages()
        page = pages.paginate_queryset(experiments, request, view=self)
        return pages.get_paginated_response(ExperimentOut(page, many=True, context={"request": request}).data)

    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        model_id = body.get("model")
        if not isinstance(model_id, int):
            raise ApiValidationError({"model": "Give the id of one of your models."})
        model = selectors.model_get_for(user=request.user, model_id=model_id)
        dataset = dataset_of(request, body.get("dataset"))
        rerun_of = _experiment_or_none(request, body.get("rerun_of"), "rerun_of")
        try:
            experiment = services.experiment_create(owner=request.user, model=model, dataset=dataset,
                                                    recipe=body.get("recipe", ""), config=body.get("config"),
                                                    telemetry_interval_s=_number_or_none(body, "telemetry_interval_s"),
                                                    rerun_of=rerun_of, device_shape=_text(body, "device_shape"),
                                                    hosts=body.get("hosts", 1))
        except services.QuotaExceeded as exc:
            return Response({"detail": exc.messages[0]}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        except ValidationError as exc:
            raise api_errors(exc) from None
        # Read again, now that its task has been sent or not: `waiting` says if the queue was unreachable.
        experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment.pk)
        return Response(ExperimentOut(experiment, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


def _number_or_none(body: dict, field: str):
    value = body.get(field)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value  # the range is the service's to check
    raise ApiValidationError({field: "Give a number (of seconds), or leave it out for the default."})


def _text(body: dict, field: str) -> str:
    """An optional text field ("" when left out; the service checks the value)."""
    value = body.get(field)
    if value is None or isinstance(value, str):
        return value or ""
    raise ApiValidationError({field: "Give it as text, or leave it out."})


def _experiment_or_none(request, experiment_id, field: str):
    if experiment_id is None:
        return None
    if not isinstance(experiment_id, int) or isinstance(experiment_id, bool):
        raise ApiValidationError({field: "Give the id of one of your experiments, or leave it out."})
    return selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)


def dataset_of(request, dataset_id):
    if dataset_id is None:
        return None
    if not isinstance(dataset_id, int):
        raise ApiValidationError({"dataset": "Give the id of one of your datasets, or leave it out."})
    return selectors.dataset_get_for(user=request.user, dataset_id=dataset_id)


class ExperimentDetail(APIView):
    serializer_class = ExperimentOut
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
        return Response(ExperimentOut(experiment, context={"request": request}).data)

    def patch(self, request, experiment_id):
        """Change the experiment's `name`, `notes` or `tags` (a list of words); nothing else."""
        experiment = label_or_refuse(labels.experiment_label, request, experiment_id=experiment_id)
        return Response(ExperimentOut(experiment, context={"request": request}).data)

    def delete(self, request, experiment_id):
        return delete_or_refuse(deletion.experiments_delete, user=request.user, ids=[experiment_id])


class ExperimentCancel(APIView):
    serializer_class = ExperimentOut
    def post(self, request, experiment_id):
        """200 with the experiment: cancelled if it was queued, stopping (cancel_requested_at set) if running."""
        experiment = act_or_refuse(services.experiment_cancel, user=request.user, experiment_id=experiment_id)
        return Response(ExperimentOut(experiment, context={"request": request}).data)


class ExperimentRerun(APIView):
    serializer_class = ExperimentOut
    parser_classes = [JSONParser]

    def post(self, request, experiment_id):
        """201 with a new experiment on the same model and recipe: the source's settings with `config`'s laid over
        them; `dataset`, `telemetry_interval_s`, `device_shape` and `hosts` stay the source's unless given (null: none,
        or any device)."""
        source = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
        body = request.data if isinstance(request.data, dict) else {}
        changes = {}
        if "dataset" in body:
            changes["dataset"] = dataset_of(request, body["dataset"])
        if "telemetry_interval_s" in body:
            changes["telemetry_interval_s"] = _number_or_none(body, "telemetry_interval_s")
        if "device_shape" in body:
            changes["device_shape"] = _text(body, "device_shape")
        if "hosts" in body:
            changes["hosts"] = body["hosts"] if body["hosts"] is not None else 1
        try:
            experiment = services.experiment_rerun(owner=request.user, source=source,
                                                   config_changes=body.get("config"), **changes)
        except ValidationError as exc:
            raise api_errors(exc) from None
        return Response(ExperimentOut(experiment, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class ExperimentEvents(APIView):
    @schema.events
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise ApiValidationError({"after": "must be an integer sequence number"}) from None
        return Response(selectors.events_after(experiment_id=experiment.pk, after=after))


class ArtifactDownload(APIView):
    @schema.artifact
    def get(self, request, experiment_id, artifact_id):
        artifact = selectors.artifact_get_for(user=request.user, experiment_id=experiment_id,
                                              artifact_id=artifact_id)
        # A name that says what the file is (`<model>-<recipe>-<variant>-<id>.pt`), not model.pt for every run.
        return stored_file(artifact.file, as_attachment=True,
                           filename=bundle.artifact_download_name(artifact.experiment, artifact.name))


class ExperimentBundle(APIView):
    @schema.bundle
    def get(self, request, experiment_id):
        """One zip: every produced format, report.json, an offline report.html and a model card."""
        experiment = selectors.experiment_get_for(user=request.user, experiment_id=experiment_id)
        if not experiment.is_finished or not experiment.artifacts.exists():
            return Response({"detail": f"Experiment #{experiment.pk} is {experiment.status} and has no results; "
                                       "its bundle exists once it has succeeded."}, status=status.HTTP_409_CONFLICT)
        spool = tempfile.SpooledTemporaryFile(max_size=BUNDLE_IN_MEMORY_BYTES)
        try:
            bundle.write_bundle(experiment, spool)
        except FileNotFoundError:
            spool.close()
            raise NotFound("A file of this experiment is missing from storage; the bundle cannot be made.") from None
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=f"{bundle.bundle_base(experiment)}.zip")
