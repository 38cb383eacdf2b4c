"""API tokens from the browser: made (the token shown once, only its hash kept) and revoked, one user's only."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken

MAX_TOKENS = 20  # a user's live tokens: one per script or machine is plenty


def token_create(*, user) -> tuple[AuthToken, str]:
    """A new token for `user` (the page's button and POST /api/auth/token/ alike), at most MAX_TOKENS live ones."""
    if live_tokens(user=user).count() >= MAX_TOKENS:
        raise ValidationError(f"You have {MAX_TOKENS} live tokens; revoke one you no longer use first.")
    return AuthToken.objects.create(user, expiry=settings.API_TOKEN_TTL)


def token_revoke(*, user, token_key: str) -> None:
    """Raises AuthToken.DoesNotExist for a key that is not one of `user`'s tokens."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    if not deleted:
        raise AuthToken.DoesNotExist(f"You have no token {token_key[:8]}…")


def live_tokens(*, user):
    return AuthToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), user=user)
