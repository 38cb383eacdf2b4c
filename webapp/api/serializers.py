"""JSON shapes of the API. Output only: input is validated by the services and the recipe configs."""
from django.urls import reverse
from rest_framework import serializers

from webapp.models import Artifact, Dataset, Experiment, UploadedModel
from webapp.selectors.experiments import waiting_note


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


class ExperimentOut(serializers.ModelSerializer):
    artifacts = ArtifactOut(many=True, read_only=True)
    cancelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    waiting = serializers.SerializerMethodField(help_text="Why a queued experiment has not gone to the workers yet "
                                                          "(the queue is down, or the user's slots are full); "
                                                          "empty once it has.")

    class Meta:
        model = Experiment
        fields = ["id", "name", "notes", "tags", "model", "dataset", "recipe", "config", "status", "progress",
                  "stage", "error", "summary",
                  "artifacts", "last_seq", "telemetry_interval_s", "created_at", "started_at", "finished_at",
                  "cancel_requested_at", "cancelled_by", "rerun_of", "attempt", "worker", "waiting", "chain",
                  "chain_index"]

    def get_waiting(self, experiment) -> str:
        return waiting_note(experiment)
