"""The Delete buttons: one experiment, model or dataset from its page, or the experiments ticked in the list.

Each asks first (static/js/confirm.js), then comes back with a message: where the things were listed when they are
gone, where the button was when something still uses them (the message says what).
"""
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from webapp.services import deletion


def _delete(request, delete, ids: list[int], *, what: str, gone_to: str, refused_to: str):
    try:
        count = delete(user=request.user, ids=ids)
    except ObjectDoesNotExist:
        raise Http404("No such thing of yours.") from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(refused_to)
    messages.success(request, f"Deleted {what}, with its files." if count == 1
                     else f"Deleted {count} {what}s, with their files.")
    return redirect(gone_to)


@require_POST
def experiment_delete(request, experiment_id):
    return _delete(request, deletion.experiments_delete, [experiment_id], what=f"experiment #{experiment_id}",
                   gone_to="experiment-list", refused_to=f"/experiments/{experiment_id}/")


@require_POST
def experiments_delete(request):
    ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit()]
    if not ids:
        messages.error(request, "Tick the experiments to delete first.")
        return redirect("experiment-list")
    what = "experiment" if len(ids) > 1 else f"experiment #{ids[0]}"
    return _delete(request, deletion.experiments_delete, ids, what=what, gone_to="experiment-list",
                   refused_to="experiment-list")


@require_POST
def model_delete(request, model_id):
    return _delete(request, deletion.models_delete, [model_id], what=f"model #{model_id}", gone_to="model-list",
                   refused_to=f"/models/{model_id}/")


@require_POST
def dataset_delete(request, dataset_id):
    return _delete(request, deletion.datasets_delete, [dataset_id], what=f"dataset #{dataset_id}",
                   gone_to="dataset-list", refused_to=f"/datasets/{dataset_id}/")


@require_POST
def chain_delete(request, chain_id):
    return _delete(request, deletion.chains_delete, [chain_id], what=f"chain #{chain_id}", gone_to="chain-list",
                   refused_to=f"/chains/{chain_id}/")
