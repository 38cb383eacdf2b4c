"""Refuse input no view can store or parse, with a 400 that names it, before any view sees it.

PostgreSQL text cannot hold a NUL character: a NUL in a query parameter, a form field or a JSON string would
reach the database driver and end as a 500. JSON nested thousands deep makes Python's parser raise RecursionError,
another 500. Both are refused here, for every URL, whoever asks.
"""
import json
import re

from django.http import HttpResponse, JsonResponse

MAX_JSON_DEPTH = 64  # far beyond any settings object; far below Python's recursion limit
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class HostileInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = _problem(request)
        if problem is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": problem}, status=400)
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")


def _problem(request) -> str | None:
    if _has_nul(request.GET.lists()):
        return "NUL characters are not accepted in query parameters."
    content_type = request.content_type or ""
    if request.method in ("POST", "PUT", "PATCH"):
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            if _has_nul(request.POST.lists()):
                return "NUL characters are not accepted in form fields."
        elif content_type == "application/json" or content_type.endswith("+json"):
            return _json_problem(request.body)
    return None


def _has_nul(items) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in items)


def _json_problem(body: bytes) -> str | None:
    if _depth(body) > MAX_JSON_DEPTH:
        return f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
    try:
        document = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None  # the view's own parser says what is wrong with it
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            return "NUL characters are not accepted in JSON strings."
        if isinstance(value, dict):
            if any("\x00" in key for key in value):
                return "NUL characters are not accepted in JSON strings."
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _depth(body: bytes) -> int:
    """The deepest nesting of [ and { outside strings, counted without parsing (so without recursion): strings are
    cut out first, then only the brackets are walked."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", body)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest
