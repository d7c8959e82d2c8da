"""Request-wide rules: body size limits for the agent API, two-factor login, who is acting (for
audit rows written by signals), and the Content-Security-Policy header."""

from collections.abc import Callable

from csp.middleware import CSPMiddleware, PolicyParts
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


class TwoFactorMiddleware:
    """Stop a logged-in but unverified staff member at the set-up or verify page (safeguard.core.twofactor).

    After django_otp's OTPMiddleware, which tells whether this session passed a second factor.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from safeguard.core.twofactor import pending_redirect

        return pending_redirect(request) or self.get_response(request)


class AuditActorMiddleware:
    """Name the request's staff member as the actor of audit rows that signals write meanwhile.

    Access changes (safeguard.core.access_audit) are caught by model signals, wherever they are
    made (an admin page, an inline, a script); a signal has no request, so the actor travels in a
    context variable set for exactly the length of the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from safeguard.core.access_audit import acting_as

        user = getattr(request, "user", None)
        with acting_as(user if user is not None and user.is_authenticated else None):
            return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with per-path additions from SAFEGUARD_CSP_PATH_UPDATES.

    CONTENT_SECURITY_POLICY is the one strict policy; SAFEGUARD_CSP_PATH_UPDATES maps a path
    prefix to sources added for pages under it (third-party pages we do not write, such as the
    API docs), so an exception never widens the console's policy.
    """

    def get_policy_parts(self, request: HttpRequest, response: HttpResponse, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        for prefix, update in getattr(settings, "SAFEGUARD_CSP_PATH_UPDATES", {}).items():
            if request.path_info.startswith(prefix):
                merged = dict(parts.update or {})
                for directive, sources in update.items():
                    merged[directive] = [*merged.get(directive, []), *sources]
                parts.update = merged
        return parts
