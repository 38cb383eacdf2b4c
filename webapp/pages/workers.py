"""The workers page."""
from django.shortcuts import render

from webapp import selectors


def worker_list(request):
    # The table refreshes itself from /api/workers/; the first rows come with the page.
    return render(request, "workers/list.html", {"workers": selectors.worker_list(viewer=request.user)})
