"""Post/Redirect/Get for refused forms, shared by every page form.

A refused form is answered with a redirect to the page it lives on, anchored at the form, like a form that
succeeded: a reload then asks for that page again instead of posting the form a second time. What was submitted
and why it was refused wait in the session for that page, which shows them once and drops them.

Services refuse with a ValidationError keyed by their own names ("config.epochs", "dataset", "steps.1.config");
each page maps those keys to its inputs. What belongs to no input goes to one summary at the top of the form, in
words rather than keys.
"""
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpResponseRedirect, QueryDict

_SESSION_KEY = "refused_forms"
_NOT_KEPT = frozenset({"csrfmiddlewaretoken"})  # a fresh token comes with the page
FIELD_NOTE = "Some fields need a change: each says why next to it."
_WORDS = {"telemetry_interval_s": "telemetry interval", "rerun_of": "the run to repeat"}


@dataclass
class Refusal:
    """A refused submit as its page shows it: `values` by input name as posted, `errors` by input name, and the
    `summary` of what belongs to no input."""

    values: QueryDict
    errors: dict[str, list[str]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    def summary_lines(self, more_field_errors: bool = False) -> list[str]:
        """The summary, with a pointer to the fields when any has an error (it is the part a screen reader
        announces)."""
        return self.summary + ([FIELD_NOTE] if self.errors or more_field_errors else [])


def refuse(request, form_id: str, page_url: str, *, errors: dict | None = None, summary=()) -> HttpResponseRedirect:
    """Keep what `request` posted and why it was refused for the form `form_id` of `page_url`, and send the
    browser there."""
    stash = request.session.get(_SESSION_KEY) or {}
    stash[_slot(page_url, form_id)] = {
        "values": {key: values for key, values in request.POST.lists() if key not in _NOT_KEPT},
        "errors": {name: list(messages) for name, messages in (errors or {}).items()},
        "summary": list(summary),
    }
    request.session[_SESSION_KEY] = stash
    return HttpResponseRedirect(f"{page_url}#{form_id}")


def take(request, form_id: str) -> Refusal | None:
    """The refusal waiting for the form `form_id` of this page, once; None when there is none."""
    stash = request.session.get(_SESSION_KEY) or {}
    kept = stash.pop(_slot(request.path, form_id), None)
    if kept is None:
        return None
    request.session[_SESSION_KEY] = stash
    values = QueryDict(mutable=True)
    for key, posted in kept["values"].items():
        values.setlist(key, posted)
    return Refusal(values=values, errors=kept["errors"], summary=kept["summary"])


def split_errors(exc: ValidationError, to_input) -> tuple[dict[str, list[str]], list[str]]:
    """A service's refusal as (errors by input name, summary lines). `to_input(key)` names the input a service key
    belongs to, or None: that error goes to the summary, led by what it is about."""
    if not hasattr(exc, "error_dict"):
        return {}, [sentence(message) for message in exc.messages]
    errors, summary = {}, []
    for key, messages in exc.message_dict.items():
        name = None if key == NON_FIELD_ERRORS else to_input(key)
        if name:
            errors.setdefault(name, []).extend(sentence(message) for message in messages)
        else:
            lead = "" if key == NON_FIELD_ERRORS else f"{about(key)}: "
            summary.extend(lead + message for message in messages)
    return errors, summary


def about(key: str) -> str:
    """A service key in words: "steps.1.config.student_model" is "Step 2, student model"."""
    parts = [part for part in key.split(".") if part not in ("config", "architecture_config")]
    words = []
    for position, part in enumerate(parts):
        if part.isdigit() and position and parts[position - 1] == "steps":
            words[-1] = f"step {int(part) + 1}"
        elif part == "steps":
            words.append("steps")
        else:
            words.append(_WORDS.get(part, part.replace("_", " ")))
    return sentence(", ".join(words) or key)


def sentence(text: str) -> str:
    """The config types say "must be at least 1"; standing alone, a message starts with a capital. A first word
    with digits is a name ("fp16", "int8") and stays as written."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() else text


def _slot(page_url: str, form_id: str) -> str:
    # By page and form: a refusal on one model's page never shows on another's, nor in another form of its page.
    return f"{page_url}#{form_id}"
