"""The datasets pages: the list with the upload form, and one dataset with its previews."""
from django.shortcuts import render

from webapp import selectors
from webapp.models import Dataset
from webapp.pages.upload_rules import dataset_upload_rules


def dataset_list(request):
    return render(request, "datasets/list.html", {
        "datasets": selectors.dataset_list_for(user=request.user),
        "kinds": Dataset.Kind.choices,
        "upload_rules": dataset_upload_rules(),
    })


def dataset_detail(request, dataset_id):
    dataset = selectors.dataset_get_for(user=request.user, dataset_id=dataset_id)
    labels = dataset.info.get("preview_labels") or {}
    # (file name, its class): a preview made before imports recorded classes has none
    previews = [(f.name, labels.get(f.name, "")) for f in dataset.files.all() if f.name.startswith("preview_")]
    return render(request, "datasets/detail.html", {"dataset": dataset, "previews": previews})
