"""The home page: the first-run path (a model, a dataset, an experiment, the download), with the samples one
button away."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp import selectors, services


def home(request):
    return render(request, "home.html", selectors.first_run_for(user=request.user))


@require_POST
def sample_model(request):
    model = services.sample_model_create(owner=request.user)
    messages.success(request, f"{model.name} is made; a worker is inspecting it.")
    return redirect("home")


@require_POST
def sample_dataset(request):
    dataset = services.sample_dataset_create(owner=request.user)
    messages.success(request, f"{dataset.name} is added; a worker is importing it.")
    return redirect("home")
