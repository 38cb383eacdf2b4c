"""What owners write on their experiments and models: a name, notes and tags, searchable in the experiment list."""
import re

from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.models import Experiment, UploadedModel

MAX_NAME = 200
MAX_NOTES = 10_000
MAX_TAGS = 20
TAG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def experiment_label(*, user, experiment_id: int, changes: dict) -> Experiment:
    """Change any of `name`, `notes`, `tags` of one of `user`'s experiments (DoesNotExist for anyone else's)."""
    return _label(Experiment, user, experiment_id, changes, name_required=False)


def model_label(*, user, model_id: int, changes: dict) -> UploadedModel:
    """Rename a model, or change its notes or tags; a model keeps a name."""
    return _label(UploadedModel, user, model_id, changes, name_required=True)


def parse_tags(value) -> list[str]:
    """Tags from a list or a comma- or space-separated text: lowercased, each checked, duplicates dropped."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValidationError({"tags": "Give the tags as a list of words, or as one text separated by commas."})
    tags = list(dict.fromkeys(tag.strip().lower() for tag in value))
    bad = [tag for tag in tags if not TAG.fullmatch(tag)]
    if bad:
        raise ValidationError({"tags": f"{bad[0][:50]!r} is not a tag: up to 40 letters, digits, '_', '.' or '-', "
                                       "starting with a letter or digit."})
    if len(tags) > MAX_TAGS:
        raise ValidationError({"tags": f"At most {MAX_TAGS} tags; got {len(tags)}."})
    return tags


def _label(model_class, user, pk: int, changes: dict, *, name_required: bool):
    with transaction.atomic():
        # Whose it is first: anyone else's reads as missing, whatever they sent.
        row = model_class.objects.select_for_update().get(pk=pk, owner=user)
        fields = _checked(changes, name_required=name_required)
        for field, value in fields.items():
            setattr(row, field, value)
        if fields:
            row.save(update_fields=list(fields))
    return row


def _checked(changes: dict, *, name_required: bool) -> dict:
    unknown = set(changes) - {"name", "notes", "tags"}
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Only name, notes and tags can be changed here."})
    fields = {}
    if "name" in changes:
        fields["name"] = _text(changes["name"], "name", MAX_NAME, required=name_required, one_line=True)
    if "notes" in changes:
        fields["notes"] = _text(changes["notes"], "notes", MAX_NOTES, required=False, one_line=False)
    if "tags" in changes:
        fields["tags"] = parse_tags(changes["tags"])
    return fields


def _text(value, field: str, limit: int, *, required: bool, one_line: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError({field: "Give a text."})
    value = value.strip()
    if required and not value:
        raise ValidationError({field: "Give a name."})
    if len(value) > limit:
        raise ValidationError({field: f"At most {limit:,} characters; got {len(value):,}."})
    if _CONTROL.search(value) or (one_line and ("\n" in value or "\r" in value)):
        raise ValidationError({field: "Control characters and line breaks are not allowed here."})
    return value
