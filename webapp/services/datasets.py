"""Datasets: an upload (or a built-in set) that a worker imports, in the sandbox, into a normalized dataset.npz."""
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from optimizers.configs import ConfigError
from optimizers.data.options import TEXT_FORMATS, parse_dataset_options, text_format_of
from tasks.celery import PREPARE_DATASET
from webapp.models import Dataset, DatasetFile
from webapp.services.files import (
    check_upload_size,
    fail_and_drop_file,
    name_error,
    save_rows_with_files,
    save_with_file_and_enqueue,
    sha256_of_upload,
)
from webapp.services.sniff import text_file_check


def _clean(name: str, kind: str, options) -> tuple[str, dict]:
    errors = {}
    name = (name or "").strip()
    if error := name_error(name, "dataset"):
        errors["name"] = error
    if kind not in Dataset.Kind.values:
        errors["kind"] = f"Choose one of: {', '.join(Dataset.Kind.values)}."
    else:
        try:
            options = parse_dataset_options(kind, options if options is not None else {})
        except ConfigError as exc:
            errors["options" if exc.field == "dataset_options" else f"options.{exc.field}"] = exc.message
    if errors:
        raise ValidationError(errors)
    return name, options


def dataset_create(*, owner, name: str, kind: str, upload: UploadedFile | None = None,
                   options: dict | None = None) -> Dataset:
    name, options = _clean(name, kind, options)
    dataset = Dataset(owner=owner, name=name, kind=kind, options=options)
    if kind != Dataset.Kind.DIGITS:
        check_upload_size(upload)
        if kind == Dataset.Kind.TEXT:
            dataset.options = _text_options(upload, options)
        dataset.original_filename = (upload.name or "")[:255]
        dataset.sha256 = sha256_of_upload(upload)
        dataset.size_bytes = upload.size
        dataset.source.save("upload", upload, save=False)
    save_with_file_and_enqueue(dataset, "source", PREPARE_DATASET)
    return dataset


def _text_options(upload: UploadedFile, options: dict) -> dict:
    """A text dataset's options with its format: as given, else from the file's extension (the worker never sees
    the user's file name). The first bytes must look like UTF-8 text."""
    text_file_check(upload)
    if "format" in options:
        return options
    found = text_format_of(upload.name or "")
    if found is None:
        raise ValidationError({"file": f"A text dataset is a file ending in {', '.join(TEXT_FORMATS)}; "
                                       f"{upload.name or 'this file'} is not (or give the format option)."})
    return {**options, "format": found}


def dataset_files_store(*, dataset_id: int, files: dict) -> list[DatasetFile]:
    rows = [(DatasetFile(dataset_id=dataset_id, name=name), "file", path) for name, path in files.items()]
    return save_rows_with_files(rows)


def dataset_import_succeeded(*, dataset_id: int, info: dict) -> None:
    Dataset.objects.filter(pk=dataset_id).update(status=Dataset.Status.READY, error="", info=info)


def dataset_import_failed(*, dataset_id: int, error: str) -> None:
    fail_and_drop_file(Dataset, dataset_id, "source", error)
