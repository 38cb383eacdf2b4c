"""Reads of the worker side: the rows a task works on, found by id alone (a task acts for the owner it was queued
by, so no user is at hand). None when the row is gone or no longer waits for this task.
"""
from webapp.models import Dataset, Experiment, UploadedModel


def model_pending(*, model_id: int) -> UploadedModel | None:
    return UploadedModel.objects.filter(pk=model_id, status=UploadedModel.Status.PENDING).first()


def dataset_pending(*, dataset_id: int) -> Dataset | None:
    return Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PENDING).first()


def experiment_to_run(*, experiment_id: int) -> Experiment:
    """The experiment a worker has just claimed, with the model and dataset the job needs."""
    return Experiment.objects.select_related("model", "dataset").get(pk=experiment_id)


def experiment_queued(*, experiment_id: int) -> Experiment | None:
    """The experiment a worker was offered, with its model, while it is still queued (not claimed, ended, deleted)."""
    return (Experiment.objects.select_related("model").filter(pk=experiment_id, status=Experiment.Status.QUEUED)
            .first())


def experiment_cancel_requested(*, experiment_id: int) -> bool:
    """Polled by the worker while the job runs (about once a second)."""
    return Experiment.objects.filter(pk=experiment_id, cancel_requested_at__isnull=False).exists()


def experiment_run_current(*, experiment_id: int, attempt: int) -> bool:
    """Whether the run a further host of a multi-host job was asked to join still goes on: running, the same attempt,
    no cancel asked for. Polled by that host about once a second."""
    return Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING, attempt=attempt,
                                     cancel_requested_at__isnull=True).exists()


def model_of_owner(*, owner_id: int, model_id: int) -> UploadedModel | None:
    """Another model an experiment's settings name (a distill student), if it is still its owner's and ready."""
    return UploadedModel.objects.filter(owner_id=owner_id, pk=model_id, status=UploadedModel.Status.READY).first()


def dataset_prepared_file(*, dataset: Dataset):
    """The normalized dataset.npz a worker made when it imported the dataset."""
    return dataset.files.get(name="dataset.npz").file
