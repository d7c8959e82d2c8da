"""Refuse oversized agent requests before Django reads their body."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from safeguard.core.api import error_body


def body_limit_for(path: str) -> int | None:
    """The longest configured prefix of `path` decides its body limit."""
    matches = [prefix for prefix in settings.SAFEGUARD_BODY_LIMITS if path.startswith(prefix)]
    if not matches:
        return None
    return settings.SAFEGUARD_BODY_LIMITS[max(matches, key=len)]


class ApiBodySizeLimitMiddleware:
    """Answer 413 in the API's error shape when Content-Length exceeds the endpoint's limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit_for(request.path)
        if limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse(error_body("Invalid Content-Length header."), status=400)
            if length > limit:
                return JsonResponse(
                    error_body(
                        f"Request body too large: {length} bytes, the limit is {limit}.", {"body": ["too large"]}
                    ),
                    status=413,
                )
        return self.get_response(request)
