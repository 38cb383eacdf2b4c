"""The API tokens page: your tokens (their first characters, when made, when they expire), a new one shown once,
and a Revoke button on each."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from knox.models import AuthToken

from webapp.services import tokens


@require_http_methods(["GET", "POST"])
def token_list(request):
    new_token = None
    if request.method == "POST":
        try:
            _, new_token = tokens.token_create(user=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
            return redirect("token-list")
    # A new token is shown in this response only: never in a redirect's message, which would keep it in a cookie.
    return render(request, "tokens.html", {
        "tokens": tokens.live_tokens(user=request.user).order_by("-created"), "new_token": new_token,
    })


@require_POST
def token_revoke(request, token_key):
    try:
        tokens.token_revoke(user=request.user, token_key=token_key)
    except AuthToken.DoesNotExist:
        raise Http404("No such token of yours.") from None
    messages.success(request, f"Revoked the token starting {token_key[:8]}: it no longer works.")
    return redirect("token-list")
