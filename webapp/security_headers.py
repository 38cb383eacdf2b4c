"""A Content-Security-Policy on every response (Django 5.2 has none built in; 6.0 does).

Every script is a file of ours (templates embed data as JSON, never code); Plotly sets inline styles on the
charts it draws; the live pages open a WebSocket to this host; no page may be framed. A script injected into a page
(an experiment's name, say, were it ever rendered unescaped) would not run.
"""
POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' ws: wss:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
