"""Model uploads: checked without deserializing, stored under a server-made name, inspected by a worker."""
import json

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from optimizers.configs import ConfigError
from optimizers.shapes import parse_dtype, parse_input_shape
from optimizers.zoo import parse_architecture
from tasks.celery import INSPECT_MODEL
from webapp.models import UploadedModel
from webapp.services.chains import chain_continue, chain_model_failed
from webapp.services.files import (
    check_upload_size,
    fail_and_drop_file,
    name_error,
    save_with_file_and_enqueue,
    sha256_of_upload,
)
from webapp.services.sniff import SAFETENSORS, model_file_kind


def _architecture(name: str, config) -> dict:
    """{"name", "config"} of a built-in architecture, validated by its own config type; {} for none."""
    if not name:
        return {}
    if isinstance(config, str):
        try:
            config = json.loads(config) if config.strip() else {}
        except ValueError:
            raise ValidationError({"architecture_config": "must be a JSON object of settings"}) from None
    try:
        parsed = parse_architecture(name, config if config is not None else {})
    except ConfigError as exc:
        key = "architecture" if exc.field == "architecture" else f"architecture_config.{exc.field}"
        raise ValidationError({key: exc.message}) from None
    return {"name": name, "config": parsed.to_dict()}


def _model_fields(name: str, input_shape: str, input_dtype: str, architecture: dict) -> tuple[str, list[int], str]:
    errors = {}
    name = (name or "").strip()
    if error := name_error(name, "model"):
        errors["name"] = error
    shape = dtype = None
    try:
        if architecture and not (input_shape or "").strip():
            shape, dtype = _architecture_example(architecture)
        else:
            shape = list(parse_input_shape(input_shape or ""))
            dtype = parse_dtype(input_dtype or "float32")
    except ValueError as exc:
        errors["input_shape"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return name, shape, dtype


def _architecture_example(architecture: dict) -> tuple[list[int], str]:
    shape, dtype = parse_architecture(architecture["name"], architecture["config"]).example_input()
    return list(shape), dtype


def model_create(*, owner, upload: UploadedFile | None, name: str, input_shape: str, input_dtype: str = "float32",
                 architecture: str = "", architecture_config=None) -> UploadedModel:
    check_upload_size(upload)
    kind = model_file_kind(upload)
    arch = _architecture(architecture, architecture_config)
    if kind == SAFETENSORS and not arch:
        raise ValidationError({"architecture": "A safetensors state dict holds only weights: pick the built-in "
                                               "architecture it belongs to."})
    name, shape, dtype = _model_fields(name, input_shape, input_dtype, arch)
    model = UploadedModel(
        owner=owner, name=name, original_filename=(upload.name or "")[:255], sha256=sha256_of_upload(upload),
        size_bytes=upload.size, input_shape=shape, input_dtype=dtype, architecture=arch,
    )
    model.file.save("upload", upload, save=False)
    save_with_file_and_enqueue(model, "file", INSPECT_MODEL)
    return model


def model_inspection_succeeded(*, model_id: int, info: dict) -> None:
    with transaction.atomic():
        UploadedModel.objects.filter(pk=model_id).update(
            status=UploadedModel.Status.READY, error="", info=info,
            format=info.get("format", ""), params=info.get("params"),
        )
        chain_continue(model_id=model_id)  # a chain step's result: the next step starts on it


def model_inspection_failed(*, model_id: int, error: str) -> None:
    with transaction.atomic():
        fail_and_drop_file(UploadedModel, model_id, "file", error)
        chain_model_failed(model_id=model_id, error=error)
