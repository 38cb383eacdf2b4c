"""Reads of models and datasets. Every query starts from the user, so nobody reaches another user's (404)."""
from django.shortcuts import get_object_or_404

from webapp.models import Dataset, DatasetFile, UploadedModel


def model_list_for(*, user):
    return UploadedModel.objects.filter(owner=user)


def model_get_for(*, user, model_id) -> UploadedModel:
    return get_object_or_404(model_list_for(user=user), pk=model_id)


def dataset_list_for(*, user):
    return Dataset.objects.filter(owner=user)


def dataset_get_for(*, user, dataset_id) -> Dataset:
    return get_object_or_404(dataset_list_for(user=user), pk=dataset_id)


def dataset_ready_for(*, user):
    return dataset_list_for(user=user).filter(status=Dataset.Status.READY)


def dataset_preview_for(*, user, dataset_id, name) -> DatasetFile:
    return get_object_or_404(DatasetFile.objects.filter(dataset__owner=user, dataset_id=dataset_id,
                                                        name__startswith="preview_"), name=name)
