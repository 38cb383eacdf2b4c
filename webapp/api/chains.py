"""Chains over the API: GET/POST /api/chains/, one chain, its cancel and its resume."""
from django.core.exceptions import ValidationError
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp import selectors, services
from webapp.api import schema
from webapp.api.deletion import delete_or_refuse
from webapp.api.errors import act_or_refuse, api_errors
from webapp.api.experiments import dataset_of
from webapp.models import Chain
from webapp.selectors.chains import chain_get_for, chain_list_for, chain_view
from webapp.services import deletion


class ChainOut(serializers.Serializer):
    """What GET /api/chains/{id}/ answers (webapp.selectors.chains.chain_view)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Chain.Status.choices)
    error = serializers.CharField(help_text="Which step stopped the chain, and why.")
    current_index = serializers.IntegerField(help_text="The step at work, or the one that stopped the chain.")
    model = serializers.IntegerField(allow_null=True, help_text="The model the first step runs on.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = serializers.ListField(child=serializers.DictField(), help_text=(
        "{index, recipe, config, chosen (the settings beyond the defaults), dataset, status ('waiting' until its "
        "experiment exists), experiment "
        "{id, status, progress, stage, error, attempt, model}, runs, output_model {id, name, status}}"))
    first_vs_final = serializers.ListField(child=serializers.DictField(), help_text=(
        "{axis, label, better, first, final, ratio}: the first model against the last step's result."))


def _steps_of(request, body) -> list[dict]:
    steps = body.get("steps")
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise ApiValidationError({"steps": "Give a list of steps, each {recipe, config, dataset}."})
    return [{"recipe": step.get("recipe", ""), "config": step.get("config"),
             "dataset": dataset_of(request, step.get("dataset"))} for step in steps]


class ChainListCreate(APIView):
    serializer_class = ChainOut
    parser_classes = [JSONParser]

    @schema.listing("chains")
    def get(self, request):
        """The user's chains, newest first."""
        return Response([chain_view(chain) for chain in chain_list_for(user=request.user)[:200]])

    def post(self, request):
        """201 with the chain: {model, name, steps: [{recipe, config, dataset}]}. Every step's settings are checked
        now (a 400 names the step: `steps.1.config.epochs`); the first step is queued."""
        body = request.data if isinstance(request.data, dict) else {}
        if not isinstance(body.get("model"), int):
            raise ApiValidationError({"model": "Give the id of one of your models."})
        model = selectors.model_get_for(user=request.user, model_id=body["model"])
        steps = _steps_of(request, body)
        try:
            chain = services.chain_create(owner=request.user, model=model, steps=steps, name=body.get("name") or "")
        except services.QuotaExceeded as exc:
            return Response({"detail": exc.messages[0]}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        except ValidationError as exc:
            raise api_errors(exc) from None
        return Response(chain_view(chain), status=status.HTTP_201_CREATED)


class ChainDetail(APIView):
    serializer_class = ChainOut

    def get(self, request, chain_id):
        return Response(chain_view(chain_get_for(user=request.user, chain_id=chain_id)))

    def delete(self, request, chain_id):
        """204: the chain and its steps' experiments are gone (the models its steps made stay); 409 while it runs."""
        return delete_or_refuse(deletion.chains_delete, user=request.user, ids=[chain_id])


class ChainCancel(APIView):
    serializer_class = ChainOut

    def post(self, request, chain_id):
        """Cancel the step at work; the chain ends `cancelled`. 409 when it already ended."""
        return Response(chain_view(act_or_refuse(services.chain_cancel, user=request.user, chain_id=chain_id)))


class ChainResume(APIView):
    serializer_class = ChainOut
    parser_classes = [JSONParser]

    def post(self, request, chain_id):
        """Start the step that stopped a failed or cancelled chain again: {config: settings to change, dataset}.
        409 when the chain cannot be resumed, 400 naming a bad setting."""
        body = request.data if isinstance(request.data, dict) else {}
        changes = {"dataset": dataset_of(request, body["dataset"])} if "dataset" in body else {}
        try:
            chain = services.chain_resume(user=request.user, chain_id=chain_id, config_changes=body.get("config"),
                                          **changes)
        except Chain.DoesNotExist:
            raise NotFound() from None
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise api_errors(exc) from None
            return Response({"detail": exc.messages[0]}, status=status.HTTP_409_CONFLICT)
        return Response(chain_view(chain))
