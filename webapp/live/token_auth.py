"""API tokens on the WebSocket: a client that is not a browser (the `slimforge` command) sends the same
`Authorization: Token <key>` header it sends to the API. Browsers never send that header by themselves, so this
opens nothing to another site's page; the session cookie still authenticates the pages."""
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


@database_sync_to_async
def _user_of(token: bytes):
    try:
        user, _ = TokenAuthentication().authenticate_credentials(token)
    except AuthenticationFailed:
        return AnonymousUser()
    return user


def _token_of(scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"token" and token.strip() else None
    return None


class TokenAuthMiddleware:
    """Inside the session's AuthMiddlewareStack: a token header sets the user when the session did not."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        token = _token_of(scope)
        user = scope.get("user")
        if token is not None and (user is None or not user.is_authenticated):
            scope = {**scope, "user": await _user_of(token)}
        return await self.app(scope, receive, send)
