"""The datasets pages: the list with the upload form, and one dataset with its previews."""
from django.shortcuts import render

from webapp import selectors
from webapp.models import Dataset


def dataset_list(request):
    return render(request, "datasets/list.html", {
        "datasets": selectors.dataset_list_for(user=request.user),
        "kinds": Dataset.Kind.choices,
    })


def dataset_detail(request, dataset_id):
    dataset = selectors.dataset_get_for(user=request.user, dataset_id=dataset_id)
    previews = [f.name for f in dataset.files.all() if f.name.startswith("preview_")]
    return render(request, "datasets/detail.html", {"dataset": dataset, "previews": previews})
