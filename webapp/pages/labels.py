"""The "Name, notes and tags" forms of the experiment and model pages."""
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from webapp.pages import refusals
from webapp.services import labels

FORM = "labels-form"


def _save(request, label, back: str, **target):
    changes = {field: request.POST.get(field, "") for field in ("name", "notes", "tags")}
    try:
        label(user=request.user, **target, changes=changes)
    except ObjectDoesNotExist:
        raise Http404("No such thing of yours.") from None
    except ValidationError as exc:
        errors, summary = refusals.split_errors(exc, lambda key: key if key in changes else None)
        return refusals.refuse(request, FORM, back, errors=errors, summary=summary)
    messages.success(request, "Saved the name, notes and tags.")
    return redirect(back)


@require_POST
def experiment_labels(request, experiment_id):
    return _save(request, labels.experiment_label, f"/experiments/{experiment_id}/", experiment_id=experiment_id)


@require_POST
def model_labels(request, model_id):
    return _save(request, labels.model_label, f"/models/{model_id}/", model_id=model_id)
