from django.contrib import admin

from webapp.models import Artifact, Experiment, UploadedModel


@admin.register(UploadedModel)
class UploadedModelAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "status", "format", "params", "size_bytes", "created_at")
    list_filter = ("status", "format")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("id", "recipe", "model", "owner", "status", "progress", "created_at")
    list_filter = ("status", "recipe")


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("id", "experiment", "name", "size_bytes", "sha256")
