"""ASGI entry point: HTTP pages and API, plus the experiment WebSocket, served by Uvicorn.

Every HTTP request passes webapp.body_limit first: a body over its limit is refused as it streams in.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from webapp.body_limit import BodyLimit  # noqa: E402
from webapp.live.routing import websocket_urlpatterns  # noqa: E402
from webapp.live.token_auth import TokenAuthMiddleware  # noqa: E402


def _http_app():
    if settings.SERVE_STATIC:
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        return ASGIStaticFilesHandler(django_asgi_app)
    return django_asgi_app


application = ProtocolTypeRouter({
    "http": BodyLimit(_http_app()),
    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))),
})
