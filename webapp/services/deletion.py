"""Deleting models, datasets and experiments with their files: all of the chosen ones or none.

Never what queued or running work uses (a model under a running job, a dataset a queued job will read, a student
model a distillation trains), and never an upload a worker is still inspecting: the refusal names each one and why.
The rows go in one transaction, their work re-checked under row locks inside it; the files are deleted from
storage only once that transaction has committed, so a file whose row is still there is never lost.
"""
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from webapp.models import Artifact, Chain, Dataset, DatasetFile, Experiment, UploadedModel

ACTIVE = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)


def experiments_delete(*, user, ids: Iterable[int]) -> int:
    with transaction.atomic():
        experiments = _owned(Experiment, user, ids, "experiment")
        _refuse([f"experiment #{e.pk} is {e.status}: cancel it first" for e in experiments if e.status in ACTIVE])
        _delete_rows(Experiment, experiments, _files(Artifact.objects.filter(experiment__in=experiments), "file"))
    return len(experiments)


def chains_delete(*, user, ids: Iterable[int]) -> int:
    """A chain goes with its steps' experiments and their artifacts; the models its steps made stay, with the model
    each came from as their lineage."""
    with transaction.atomic():
        chains = _owned(Chain, user, ids, "chain")
        experiments = list(Experiment.objects.select_for_update().filter(chain__in=chains).order_by("pk"))
        _refuse([f"chain #{c.pk} is running: cancel it first" for c in chains if c.status == Chain.Status.RUNNING]
                + [f"its {_named(e)} has not ended yet" for e in experiments if e.status in ACTIVE])
        files = _files(Artifact.objects.filter(experiment__in=experiments), "file")
        Experiment.objects.filter(pk__in=[e.pk for e in experiments]).delete()
        _delete_rows(Chain, chains, files)
    return len(chains)


def models_delete(*, user, ids: Iterable[int]) -> int:
    """A model goes with its experiments and their artifacts."""
    with transaction.atomic():
        models = _owned(UploadedModel, user, ids, "model")
        _refuse(_in_use(models, "model", "inspected", _active_experiments_using(user, models=models),
                        lambda experiment: _model_used(experiment, models)))
        files = _files(models, "file") + _files(Artifact.objects.filter(experiment__model__in=models), "file")
        _delete_rows(UploadedModel, models, files)
    return len(models)


def datasets_delete(*, user, ids: Iterable[int]) -> int:
    """Finished experiments that measured on a deleted dataset keep their reports (their dataset link empties)."""
    with transaction.atomic():
        datasets = _owned(Dataset, user, ids, "dataset")
        _refuse(_in_use(datasets, "dataset", "imported", _active_experiments_using(user, datasets=datasets),
                        lambda experiment: experiment.dataset_id))
        files = _files(datasets, "source") + _files(DatasetFile.objects.filter(dataset__in=datasets), "file")
        _delete_rows(Dataset, datasets, files)
    return len(datasets)


def _in_use(rows, noun: str, pending: str, active: list[Experiment], used_id) -> list[str]:
    """Why these models or datasets cannot go: a worker still preparing one, or queued or running work using one."""
    problems = [f"{noun} #{row.pk} ({row.name}) is still being {pending}" for row in rows if row.status == "pending"]
    problems += [f"{_named(experiment)} uses {noun} #{used_id(experiment)}: cancel it or wait for it to end"
                 for experiment in active]
    return problems


def _delete_rows(model_class, rows: list, files: list) -> None:
    model_class.objects.filter(pk__in=[row.pk for row in rows]).delete()
    _delete_files_on_commit(files)


def _owned(model_class, user, ids: Iterable[int], noun: str) -> list:
    """The rows, locked; any id that is not one of `user`'s reads as missing (DoesNotExist), as on every page."""
    wanted = sorted(set(ids))
    if not wanted:
        raise ValidationError({"ids": f"Choose at least one {noun}."})
    rows = list(model_class.objects.select_for_update().filter(owner=user, pk__in=wanted).order_by("pk"))
    missing = sorted(set(wanted) - {row.pk for row in rows})
    if missing:
        raise model_class.DoesNotExist(f"You have no {noun} #{missing[0]}.")
    return rows


def _active_experiments_using(user, *, models=(), datasets=()) -> list[Experiment]:
    """Queued or running experiments that read one of these: as their model, dataset, or a referenced model."""
    model_ids, dataset_ids = [m.pk for m in models], [d.pk for d in datasets]
    uses = Q(model_id__in=model_ids) | Q(dataset_id__in=dataset_ids)
    for role in ("student_model",):  # the model ids a recipe's settings may name (distill's student)
        uses |= Q(**{f"config__{role}__in": model_ids})
    return list(Experiment.objects.select_for_update().filter(uses, owner=user, status__in=ACTIVE).order_by("pk"))


def _model_used(experiment: Experiment, models: list[UploadedModel]) -> int:
    ids = {m.pk for m in models}
    return experiment.model_id if experiment.model_id in ids else experiment.config.get("student_model")


def _named(experiment: Experiment) -> str:
    return f"{experiment.status} experiment #{experiment.pk}"


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ValidationError("Nothing was deleted: " + "; ".join(problems) + ".")


def _files(rows, field_name: str) -> list:
    """(storage, name) of each row's stored file: enough to delete it after the row is gone."""
    found = []
    for row in rows:
        field = getattr(row, field_name)
        if field:
            found.append((field.storage, field.name))
    return found


def _delete_files_on_commit(files: list) -> None:
    def delete():
        for storage, name in files:
            storage.delete(name)  # a name already gone is fine: storage.delete ignores it

    transaction.on_commit(delete)
