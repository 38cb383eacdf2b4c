"""Reads. Every query starts from the user, so nobody reaches another user's things (404 otherwise)."""
from django.shortcuts import get_object_or_404

from webapp.models import Artifact, Dataset, DatasetFile, Event, Experiment, UploadedModel

EVENTS_PAGE = 5000


def model_list_for(*, user):
    return UploadedModel.objects.filter(owner=user)


def model_get_for(*, user, model_id) -> UploadedModel:
    return get_object_or_404(model_list_for(user=user), pk=model_id)


def experiment_list_for(*, user, model: UploadedModel | None = None):
    experiments = Experiment.objects.filter(owner=user).select_related("model")
    return experiments.filter(model=model) if model is not None else experiments


def experiment_get_for(*, user, experiment_id) -> Experiment:
    return get_object_or_404(experiment_list_for(user=user), pk=experiment_id)


def experiment_owned_by(*, user, experiment_id) -> bool:
    return Experiment.objects.filter(owner=user, pk=experiment_id).exists()


def events_after(*, experiment_id: int, after: int, limit: int = EVENTS_PAGE) -> list[dict]:
    rows = Event.objects.filter(experiment_id=experiment_id, seq__gt=after).order_by("seq")[:limit]
    return [row.record for row in rows]


def events_between(*, experiment_id: int, after: int, before: int) -> list[dict]:
    rows = Event.objects.filter(experiment_id=experiment_id, seq__gt=after, seq__lt=before).order_by("seq")
    return [row.record for row in rows]


def artifact_get_for(*, user, experiment_id, artifact_id) -> Artifact:
    return get_object_or_404(
        Artifact.objects.filter(experiment__owner=user, experiment_id=experiment_id), pk=artifact_id
    )


def dataset_list_for(*, user):
    return Dataset.objects.filter(owner=user)


def dataset_get_for(*, user, dataset_id) -> Dataset:
    return get_object_or_404(dataset_list_for(user=user), pk=dataset_id)


def dataset_ready_for(*, user):
    return dataset_list_for(user=user).filter(status=Dataset.Status.READY)


def dataset_preview_for(*, user, dataset_id, name) -> DatasetFile:
    return get_object_or_404(DatasetFile.objects.filter(dataset__owner=user, dataset_id=dataset_id,
                                                        name__startswith="preview_"), name=name)
