"""Files through the storage API: hashes, and saving a batch of files all-or-nothing."""
import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from webapp.services.outbox import outbox_add


def sha256_of_upload(upload) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def sha256_of_path(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def name_error(name: str, what: str) -> str | None:
    """Why `name` (already stripped) cannot name a model or dataset, or None."""
    if not name:
        return f"Give the {what} a name."
    if len(name) > 200:
        return "The name is longer than 200 characters."
    return None


def check_upload_size(upload, field: str = "file") -> None:
    if upload is None:
        raise ValidationError({field: "Choose a file to upload."})
    if upload.size == 0:
        raise ValidationError({field: "The file is empty."})
    if upload.size > settings.MAX_UPLOAD_BYTES:
        limit_mb = settings.MAX_UPLOAD_BYTES // (1024 * 1024)
        raise ValidationError({field: f"The file is larger than the {limit_mb} MB limit."})


def save_rows_with_files(rows_and_paths) -> list:
    """Save each (row, field name, local path): the files through the storage API, the rows in one transaction.

    If anything fails, the files already written are deleted again: no half-stored result is left behind.
    """
    written = []
    try:
        with transaction.atomic():
            for row, field_name, path in rows_and_paths:
                field = getattr(row, field_name)
                with open(path, "rb") as handle:
                    field.save(row.name, File(handle), save=False)
                written.append(field)
                row.save()
    except BaseException:
        for field in written:
            field.delete(save=False)
        raise
    return [row for row, _, _ in rows_and_paths]


def fail_and_drop_file(model_class, pk: int, file_field: str, error: str) -> None:
    """A user file that could not be used is deleted; its record stays, failed, with the reason for its owner."""
    row = model_class.objects.filter(pk=pk).first()
    if row is None:
        return
    if getattr(row, file_field):
        getattr(row, file_field).delete(save=False)
    model_class.objects.filter(pk=pk).update(status="failed", error=error, **{file_field: ""})


def save_with_file_and_enqueue(row, file_field: str, task_name: str) -> None:
    """Write a row whose file the storage already holds, and queue its task on commit.

    If the row cannot be written, its file is deleted again: no orphan file, no half-made record.
    """
    try:
        with transaction.atomic():
            row.save()
            outbox_add(task_name, row.pk, row.owner_id)
    except BaseException:
        if getattr(row, file_field):
            getattr(row, file_field).delete(save=False)
        raise
