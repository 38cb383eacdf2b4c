"""Query-string filters of the experiment list and the compare page, parsed once for the pages and the API.

Bad values raise ValidationError({field: message}), which the API turns into a 400 naming the field.
"""
import math

from django.core.exceptions import ValidationError

from optimizers.configs import RECIPE_CONFIGS
from webapp.models import Experiment
from webapp.selectors.results import ORDERS

# ?<name>=<number>: the list keeps the runs whose figure is at most the number (webapp.selectors.results)
RESULT_LIMITS = {"size_ratio_max": "size_ratio", "latency_ratio_max": "latency_ratio",
                 "accuracy_drop_max": "accuracy_drop", "energy_max": "energy"}

SEARCH_MAX_CHARS = 200
LIST_IDS_MAX = 200  # a list page polls at most one page of rows (50)
COMPARE_IDS_MAX = 50  # a chart and a table of more would not be readable
MAX_ID = 2**63 - 1  # a bigint primary key; a longer number is garbage, not a query


def experiment_filters(params) -> dict:
    """The selector's keyword arguments from a query string: status, recipe, model_id, q, ids, order and the
    result limits ({"size_ratio": 0.5, ...})."""
    errors = {}
    filters = {"q": params.get("q", "").strip()[:SEARCH_MAX_CHARS], "limits": {}}
    for field, parse in (("status", _status), ("recipe", _recipe), ("model", _model_id), ("ids", _list_ids),
                         ("order", _order)):
        try:
            filters["model_id" if field == "model" else field] = parse(params.get(field, "").strip())
        except ValueError as exc:
            errors[field] = str(exc)
    for field, key in RESULT_LIMITS.items():
        try:
            limit = _limit(params.get(field, "").strip(), negative=key == "accuracy_drop")
        except ValueError as exc:
            errors[field] = str(exc)
        else:
            if limit is not None:
                filters["limits"][key] = limit
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


def _order(text: str) -> str:
    if text and text.removeprefix("-") not in ORDERS:
        raise ValueError(f"must be one of {', '.join(ORDERS)}, with a leading - for descending; got {text[:40]!r}")
    return text or "-created"


def _limit(text: str, *, negative: bool) -> float | None:
    """A finite number; a ratio or an energy is never below 0 (an accuracy drop may be: a gain asked for)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number, e.g. 0.5; got {text[:40]!r}") from None
    if not math.isfinite(value) or (value < 0 and not negative):
        raise ValueError(f"must be a finite number{'' if negative else ' of 0 or more'}; got {text[:40]!r}")
    return value


def _list_ids(text: str) -> list[int] | None:
    return parse_ids(text, limit=LIST_IDS_MAX) if text else None


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID
