"""Refuse a request body over its limit with 413 as it streams in, before anything buffers it.

Django's ASGI handler reads a whole body (into memory, then a temporary file) before any view or middleware
sees it, so the limit sits outside Django, around the ASGI application, and counts what the server hands on.
Under Uvicorn that is chunk by chunk as the bytes arrive (Daphne collected the whole body first, which is why
Slimforge moved off it; bench/body_limit.py measures both). A declared Content-Length over the limit is refused
before a byte is read; a chunked body is cut off at the first chunk past it.

The limit: `SLIMFORGE_MAX_UPLOAD_MB` (plus room for the form's other fields) for a signed-in user posting to an
upload URL, `DATA_UPLOAD_MAX_MEMORY_SIZE` for everything else, so a visitor who is not signed in never gets
to send more than that to any URL.
"""
import re
from http.cookies import SimpleCookie

from channels.db import database_sync_to_async
from django.conf import settings
from django.urls import Resolver404, resolve

UPLOAD_URL_NAMES = frozenset({"model-list", "dataset-list", "api-models", "api-datasets"})
FORM_OVERHEAD = 1024 * 1024  # multipart boundaries and the form's other fields, around the file itself
_TOKEN = re.compile(r"^(?:Token|Bearer)\s+(\S+)$", re.IGNORECASE)


class TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        limit = await self._limit(scope, headers)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _refuse(send, limit, declared.isdigit())
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except TooLarge:
            if not started:
                await _refuse(send, limit, True)

    async def _limit(self, scope, headers) -> int:
        small = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope.get("method") != "POST" or _url_name(scope.get("path", "")) not in UPLOAD_URL_NAMES:
            return small
        signed_in = await _signed_in(headers.get(b"cookie", b""), headers.get(b"authorization", b""))
        return settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD if signed_in else small


def _url_name(path: str) -> str | None:
    try:
        return resolve(path).url_name
    except Resolver404:
        return None


@database_sync_to_async
def _signed_in(cookie_header: bytes, authorization: bytes) -> bool:
    """Whether the request's session or API token belongs to an active user (what the view would check next)."""
    from importlib import import_module

    from django.contrib.auth import SESSION_KEY, get_user_model
    from knox.auth import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    token = _TOKEN.match(authorization.decode("latin-1"))
    if token:
        try:
            user, _ = TokenAuthentication().authenticate_credentials(token.group(1).encode())
        except AuthenticationFailed:
            return False
        return user.is_active
    cookies = SimpleCookie()
    try:
        cookies.load(cookie_header.decode("latin-1"))
    except Exception:  # noqa: BLE001 - an unparseable cookie header is no session
        return False
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value)
    user_id = session.get(SESSION_KEY)
    return user_id is not None and get_user_model().objects.filter(pk=user_id, is_active=True).exists()


async def _refuse(send, limit: int, well_formed: bool) -> None:
    if well_formed:
        status, text = 413, f"The request body is over the limit of {limit // (1024 * 1024)} MB for this URL."
    else:
        status, text = 400, "The Content-Length header is not a number."
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
