"""Writes. Views, API views, consumers and tasks change state only through these functions."""
import hashlib
import logging
import zipfile

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from optimizers.configs import ConfigError, parse_config
from optimizers.shapes import parse_dtype, parse_input_shape
from tasks.celery import INSPECT_MODEL, RUN_EXPERIMENT
from tasks.celery import app as celery_app
from webapp.models import Artifact, Event, Experiment, UploadedModel

log = logging.getLogger(__name__)


def experiment_group(experiment_id: int) -> str:
    return f"experiment.{experiment_id}"


def _enqueue_on_commit(task_name: str, object_id: int) -> None:
    transaction.on_commit(lambda: celery_app.send_task(task_name, args=[object_id]))


def _sha256_of(upload) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _check_model_file(upload: UploadedFile) -> None:
    """Cheap checks that never deserialize: both accepted formats are zip archives."""
    if upload.size == 0:
        raise ValidationError({"file": "The file is empty."})
    if upload.size > settings.MAX_MODEL_UPLOAD_BYTES:
        limit_mb = settings.MAX_MODEL_UPLOAD_BYTES // (1024 * 1024)
        raise ValidationError({"file": f"The file is larger than the {limit_mb} MB limit."})
    upload.seek(0)
    is_zip = zipfile.is_zipfile(upload)
    upload.seek(0)
    if not is_zip:
        raise ValidationError(
            {"file": "Not a TorchScript (torch.jit.save) or torch.export (.pt2) archive: "
                     "the file is not a complete zip archive."}
        )


def _parse_model_fields(name: str, input_shape: str, input_dtype: str) -> tuple[str, list[int], str]:
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Give the model a name."
    elif len(name) > 200:
        errors["name"] = "The name is longer than 200 characters."
    shape = dtype = None
    try:
        shape = list(parse_input_shape(input_shape or ""))
    except ValueError as exc:
        errors["input_shape"] = str(exc)
    try:
        dtype = parse_dtype(input_dtype or "float32")
    except ValueError as exc:
        errors["input_dtype"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return name, shape, dtype


def model_create(*, owner, upload: UploadedFile, name: str, input_shape: str,
                 input_dtype: str = "float32") -> UploadedModel:
    if upload is None:
        raise ValidationError({"file": "Choose a model file to upload."})
    name, shape, dtype = _parse_model_fields(name, input_shape, input_dtype)
    _check_model_file(upload)
    model = UploadedModel(
        owner=owner, name=name, original_filename=(upload.name or "")[:255], sha256=_sha256_of(upload),
        size_bytes=upload.size, input_shape=shape, input_dtype=dtype,
    )
    model.file.save("upload", upload, save=False)
    try:
        with transaction.atomic():
            model.save()
            _enqueue_on_commit(INSPECT_MODEL, model.pk)
    except BaseException:
        model.file.delete(save=False)  # no orphan file when the row could not be written
        raise
    return model


def model_inspection_succeeded(*, model_id: int, info: dict) -> None:
    UploadedModel.objects.filter(pk=model_id).update(
        status=UploadedModel.Status.READY, error="", info=info,
        format=info.get("format", ""), params=info.get("params"),
    )


def model_inspection_failed(*, model_id: int, error: str) -> None:
    """A file that is not a usable model is removed; the record keeps the reason for its owner."""
    model = UploadedModel.objects.filter(pk=model_id).first()
    if model is None:
        return
    if model.file:
        model.file.delete(save=False)
    UploadedModel.objects.filter(pk=model_id).update(status=UploadedModel.Status.FAILED, error=error, file="")


def _parse_recipe_config(recipe: str, config) -> dict:
    try:
        return parse_config(recipe, config if config is not None else {}).to_dict()
    except ConfigError as exc:
        key = "recipe" if exc.field == "recipe" else f"config.{exc.field}"
        raise ValidationError({key: exc.message}) from None


def experiment_create(*, owner, model: UploadedModel, recipe: str, config: dict | None) -> Experiment:
    if model.owner_id != owner.pk:
        raise ValidationError({"model": "No such model."})
    clean_config = _parse_recipe_config(recipe, config)
    if model.status != UploadedModel.Status.READY:
        raise ValidationError({"model": f"The model is {model.status}; only a ready model can be optimized."})
    applicability = model.info.get("recipes", {}).get(recipe, {"applicable": True})
    if not applicability.get("applicable", True):
        raise ValidationError({"recipe": applicability.get("reason") or "This recipe does not apply."})
    with transaction.atomic():
        experiment = Experiment.objects.create(owner=owner, model=model, recipe=recipe, config=clean_config)
        _enqueue_on_commit(RUN_EXPERIMENT, experiment.pk)
    return experiment


def experiment_claim(*, experiment_id: int, worker: str) -> bool:
    """Atomic: of two deliveries of the same task, only the first one runs it."""
    with transaction.atomic():
        claimed = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.QUEUED).update(
            status=Experiment.Status.RUNNING, worker=worker[:255], started_at=timezone.now(),
        )
        if claimed:
            events_record(experiment_id=experiment_id, records=[{"kind": "status", "status": "running"}])
    return claimed == 1


def experiment_finish(*, experiment_id: int, status: str, error: str = "", summary: dict | None = None) -> None:
    fields = {"status": status, "error": error, "finished_at": timezone.now()}
    if summary is not None:
        fields["summary"] = summary
    if status == Experiment.Status.SUCCEEDED:
        fields["progress"] = 1.0
    with transaction.atomic():
        Experiment.objects.filter(pk=experiment_id).update(**fields)
        events_record(experiment_id=experiment_id, records=[{"kind": "status", "status": status, "error": error}])


def _progress_fields(records: list[dict]) -> dict:
    fields = {}
    for record in records:
        if record["kind"] == "progress" and record.get("total"):
            fields["progress"] = min(1.0, record["done"] / record["total"])
            if record.get("stage"):
                fields["stage"] = record["stage"][:64]
        elif record["kind"] == "stage":
            fields["stage"] = record["name"][:64]
    return fields


def events_record(*, experiment_id: int, records: list[dict]) -> list[dict]:
    """Stamp records with the next seqs, store them, then push the same batch to the live pages."""
    if not records:
        return []
    now = timezone.now().timestamp()
    with transaction.atomic():
        Experiment.objects.filter(pk=experiment_id).update(last_seq=F("last_seq") + len(records),
                                                           **_progress_fields(records))
        last = Experiment.objects.values_list("last_seq", flat=True).get(pk=experiment_id)
        stamped = [{"seq": last - len(records) + i + 1, "t": record.pop("t", now), **record}
                   for i, record in enumerate(records)]
        Event.objects.bulk_create(
            Event(experiment_id=experiment_id, seq=r["seq"], kind=r["kind"], record=r) for r in stamped
        )
        transaction.on_commit(lambda: _push_events(experiment_id, stamped))
    return stamped


def _push_events(experiment_id: int, records: list[dict]) -> None:
    # The database is the truth; a lost push is healed by the page's resume from its last seq.
    try:
        async_to_sync(get_channel_layer().group_send)(
            experiment_group(experiment_id), {"type": "events.batch", "events": records}
        )
    except Exception:
        log.warning("could not push events of experiment %s to the channel layer", experiment_id, exc_info=True)


def _sha256_of_path(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifacts_store(*, experiment_id: int, files: dict) -> list[Artifact]:
    """Store finished files ({name: local path}) through the storage API; all of them or none."""
    stored = []
    try:
        with transaction.atomic():
            for name, path in files.items():
                artifact = Artifact(experiment_id=experiment_id, name=name, sha256=_sha256_of_path(path))
                with open(path, "rb") as handle:
                    artifact.file.save(name, File(handle), save=False)
                stored.append(artifact)
                artifact.size_bytes = artifact.file.size
                artifact.save()
    except BaseException:
        for artifact in stored:
            artifact.file.delete(save=False)
        raise
    return stored
