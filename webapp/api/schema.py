"""What the OpenAPI schema says of the API views drf-spectacular cannot read by itself (plain APIViews that answer
dicts, files or CSV). Kept beside the views, applied with @extend_schema; test_api_schema checks that the
generator has no remark left."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from optimizers.configs import RECIPE_CONFIGS
from optimizers.events import KINDS
from webapp.models import Experiment
from webapp.selectors.filters import RESULT_LIMITS
from webapp.selectors.results import ORDERS

DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})
IDS = inline_serializer("Ids", {"ids": serializers.ListField(child=serializers.IntegerField(), min_length=1,
                                                             max_length=500)})
FILE = OpenApiResponse(OpenApiTypes.BINARY, description="The file, as an attachment named for what it is.")

bulk_delete = extend_schema(request=IDS, responses={
    204: OpenApiResponse(description="All of them deleted, with their files."),
    409: OpenApiResponse(DETAIL, description="Nothing deleted: queued or running work still uses one of them.")})
token_create = extend_schema(
    request=inline_serializer("TokenRequest", {"username": serializers.CharField(),
                                               "password": serializers.CharField()}),
    responses={200: inline_serializer("Token", {"token": serializers.CharField(),
                                                "expiry": serializers.DateTimeField()}),
               409: OpenApiResponse(DETAIL, description="The user already has as many live tokens as allowed.")})
token_revoke = extend_schema(request=None, responses={204: OpenApiResponse(description="That token is revoked.")})
compare = extend_schema(
    parameters=[OpenApiParameter("ids", str, required=True, description="Experiment ids, comma-separated: 3,5,8")],
    responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=(
        "{axes, experiments: [{id, recipe, variant, report, values, missing, …}], references, fronts}"))})
preview = extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
artifact = extend_schema(responses={(200, "application/octet-stream"): FILE})
bundle = extend_schema(responses={(200, "application/zip"): FILE,
                                  409: OpenApiResponse(DETAIL, description="The run has no results yet.")})
EVENTS = inline_serializer("Event", {
    "seq": serializers.IntegerField(), "t": serializers.FloatField(),
    "kind": serializers.ChoiceField(choices=list(KINDS))}, many=True)
events = extend_schema(parameters=[OpenApiParameter("after", int, description="The last seq the client has.")],
                       responses={200: OpenApiResponse(EVENTS, description=(
                           "The event records after `after`, in order; each kind has its own further fields "
                           "(see the README's event record)."))})
series = extend_schema(responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=(
    "{last_seq, t0, series: {name: {kind, x, y, count, downsampled}}, stages: [{t, name, seq}], status}"))})
series_csv = extend_schema(
    parameters=[OpenApiParameter("name", str, description="Keep one series.")],
    responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="seq,t,kind,name,step,value")})
workers = extend_schema(responses={200: inline_serializer("Worker", {
    "name": serializers.CharField(), "host": serializers.CharField(), "pid": serializers.IntegerField(),
    "queues": serializers.ListField(child=serializers.CharField()), "devices": serializers.ListField(),
    "load": serializers.DictField(), "isolation": serializers.CharField(),
    "state": serializers.ChoiceField(choices=["online", "offline", "stopped"]),
    "last_heartbeat": serializers.DateTimeField(), "seconds_since_heartbeat": serializers.FloatField(),
    "started_at": serializers.DateTimeField(), "stopped_at": serializers.DateTimeField(allow_null=True),
    "current_job": serializers.DictField(allow_null=True)}, many=True)})


def experiment_listing():
    """GET /api/experiments/: the list page's filters, its order and its result limits (webapp.selectors.filters)."""
    limits = {
        "size_ratio_max": "Only succeeded runs whose file size is at most this times the original's (e.g. 0.5).",
        "latency_ratio_max": "Only succeeded runs whose latency p50 at batch 1 is at most this times the original's.",
        "accuracy_drop_max": "Only succeeded runs whose accuracy is at most this many percentage points below the "
                             "original's on the same dataset (negative: a gain of at least that much).",
        "energy_max": "Only succeeded runs using at most this many joules per 1,000 inferences (CUDA runs only).",
    }
    return extend_schema(operation_id="experiments_list", parameters=[
        OpenApiParameter("status", str, enum=list(Experiment.Status.values)),
        OpenApiParameter("recipe", str, description="A recipe's name: " + ", ".join(sorted(RECIPE_CONFIGS))),
        OpenApiParameter("model", int, description="The id of one of your models."),
        OpenApiParameter("q", str, description="Text: names, tags, notes, model, recipe, variant; #12 is one id."),
        OpenApiParameter("ids", str, description="Experiment ids, comma-separated (at most 200)."),
        OpenApiParameter("order", str, enum=[*ORDERS, *(f"-{key}" for key in ORDERS)], description=(
            "The order: created (the default is -created, newest first), size_ratio, latency_ratio, "
            "accuracy_delta (points against the original) or energy; a leading - is descending. Runs without the "
            "figure (unfinished, failed, or not measured) come last either way.")),
        *(OpenApiParameter(name, float, description=limits[name]) for name in RESULT_LIMITS),
        OpenApiParameter("limit", int, description="Rows per page (at most 200)."),
        OpenApiParameter("offset", int, description="Rows to skip: the next page's link carries it."),
    ])


def listing(name: str):
    """The list GET of a list-and-create view, told apart from its detail GET in the operation ids."""
    return extend_schema(operation_id=f"{name}_list")
