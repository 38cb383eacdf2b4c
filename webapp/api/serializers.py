"""JSON shapes of the API. Output only: input is validated by the services and the recipe configs."""
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.models import Artifact, Dataset, Experiment, UploadedModel
from webapp.selectors.comparison import variant_of
from webapp.selectors.experiments import waiting_note
from webapp.selectors.results import results_of


class ModelOut(serializers.ModelSerializer):
    class Meta:
        model = UploadedModel
        fields = ["id", "name", "status", "error", "format", "params", "size_bytes", "sha256",
                  "input_shape", "input_dtype", "architecture", "info", "notes", "tags", "created_at",
                  "parent_model", "source_experiment"]


class DatasetOut(serializers.ModelSerializer):
    previews = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "kind", "status", "error", "options", "size_bytes", "sha256", "info", "previews",
                  "created_at"]

    def get_previews(self, dataset) -> list[str]:
        names = [f.name for f in dataset.files.all() if f.name.startswith("preview_")]
        return [reverse("dataset-preview", args=[dataset.pk, name]) for name in names]


class ArtifactOut(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["id", "name", "size_bytes", "sha256", "url"]

    def get_url(self, artifact) -> str:
        path = reverse("api-artifact-download", args=[artifact.experiment_id, artifact.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class ExperimentResults(serializers.Serializer):
    size_ratio = serializers.FloatField(allow_null=True)
    latency_ratio = serializers.FloatField(allow_null=True)
    accuracy_delta = serializers.FloatField(allow_null=True)
    energy = serializers.FloatField(allow_null=True)


class ExperimentOut(serializers.ModelSerializer):
    artifacts = ArtifactOut(many=True, read_only=True)
    cancelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    waiting = serializers.SerializerMethodField(help_text="Why a queued experiment has not gone to the workers yet "
                                                          "(the queue is down, the user's slots are full, no "
                                                          "live worker serves its device shape, or one left it "
                                                          "for a device with more free memory); "
                                                          "empty once it has.")
    variant = serializers.SerializerMethodField(help_text="The recipe's variant: quantize's `variant`, prune's "
                                                          "`method`, distill's `student`.")
    results = serializers.SerializerMethodField(help_text=(
        "The figures the list orders and filters by, null until the run has succeeded with them: size_ratio and "
        "latency_ratio (result / original), accuracy_delta (percentage points against the original on the same "
        "dataset), energy (J per 1,000 inferences)."))

    class Meta:
        model = Experiment
        fields = ["id", "name", "notes", "tags", "model", "dataset", "recipe", "variant", "config", "status",
                  "progress", "stage", "error", "summary", "results",
                  "artifacts", "last_seq", "telemetry_interval_s", "device_shape", "hosts", "created_at", "started_at",
                  "finished_at",
                  "cancel_requested_at", "cancelled_by", "rerun_of", "attempt", "worker", "waiting", "chain",
                  "chain_index"]

    def get_waiting(self, experiment) -> str:
        return waiting_note(experiment)

    def get_variant(self, experiment) -> str:
        return variant_of(experiment)

    @extend_schema_field(ExperimentResults)
    def get_results(self, experiment) -> dict:
        return results_of(experiment)
