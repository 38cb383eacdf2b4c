"""Query-string filters of the experiment list and the compare page, parsed once for the pages and the API.

Bad values raise ValidationError({field: message}), which the API turns into a 400 naming the field.
"""
from django.core.exceptions import ValidationError

from optimizers.configs import RECIPE_CONFIGS
from webapp.models import Experiment

SEARCH_MAX_CHARS = 200
LIST_IDS_MAX = 200  # a list page polls at most one page of rows (50)
COMPARE_IDS_MAX = 50  # a chart and a table of more would not be readable
MAX_ID = 2**63 - 1  # a bigint primary key; a longer number is garbage, not a query


def experiment_filters(params) -> dict:
    """The selector's keyword arguments from a query string: status, recipe, model_id, q, ids."""
    errors = {}
    filters = {"q": params.get("q", "").strip()[:SEARCH_MAX_CHARS]}
    for field, parse in (("status", _status), ("recipe", _recipe), ("model", _model_id), ("ids", _list_ids)):
        try:
            filters["model_id" if field == "model" else field] = parse(params.get(field, "").strip())
        except ValueError as exc:
            errors[field] = str(exc)
    if errors:
        raise ValidationError(errors)
    return filters


def compare_ids(params) -> list[int]:
    """The experiments to compare: `?ids=1,2,3` (or `ids` repeated, as a plain form sends it), in order, once each."""
    text = ",".join(params.getlist("ids")) if hasattr(params, "getlist") else params.get("ids", "")
    try:
        ids = parse_ids(text, limit=COMPARE_IDS_MAX)
    except ValueError as exc:
        raise ValidationError({"ids": str(exc)}) from None
    if not ids:
        raise ValidationError({"ids": "choose at least one experiment, e.g. ?ids=3,5,8"})
    return ids


def parse_ids(text: str, *, limit: int) -> list[int]:
    parts = [part.strip().lstrip("#") for part in text.split(",") if part.strip()]
    if not all(_is_id(part) for part in parts):
        raise ValueError(f"must be experiment ids separated by commas, e.g. 3,5,8; got {text[:80]!r}")
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > limit:
        raise ValueError(f"at most {limit} experiments at once; got {len(ids)}")
    return ids


def _status(text: str) -> str | None:
    if text and text not in Experiment.Status.values:
        raise ValueError(f"must be one of {', '.join(Experiment.Status.values)}; got {text[:40]!r}")
    return text or None


def _recipe(text: str) -> str | None:
    if text and text not in RECIPE_CONFIGS:
        raise ValueError(f"must be one of {', '.join(sorted(RECIPE_CONFIGS))}; got {text[:40]!r}")
    return text or None


def _model_id(text: str) -> int | None:
    if text and not _is_id(text):
        raise ValueError(f"must be the id (an integer) of one of your models; got {text[:40]!r}")
    return int(text) if text else None


def _list_ids(text: str) -> list[int] | None:
    return parse_ids(text, limit=LIST_IDS_MAX) if text else None


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID
