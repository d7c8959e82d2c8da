"""The one error shape of the API: {"error": "...", "fields": {"name": ["reason"]}}."""

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# Seconds an agent is asked to wait before retrying while the database is away.
DATABASE_UNAVAILABLE_RETRY_AFTER = 10


class ApiError(exceptions.APIException):
    """A client error with a message and, optionally, the fields at fault."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid request."

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, status_code: int = 400):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.status_code = status_code


def field_error(field: str, reason: str, *, message: str | None = None) -> ApiError:
    """An ApiError naming one field and why it was refused."""
    return ApiError(message or f"Invalid {field}: {reason}", fields={field: [reason]})


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"a.b.0.c": ["reason"]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            flat.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            flat.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return flat


def error_body(message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": message, "fields": fields or {}}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler that answers every error in the one shape."""
    if isinstance(exc, ApiError):
        return Response(error_body(exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("Request body too large."), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is restarting or unreachable: nothing was stored (the request's transaction
        # rolled back), so the agent keeps the item in its outbox and retries after Retry-After.
        return Response(
            error_body("The server's database is unavailable; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_UNAVAILABLE_RETRY_AFTER)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), None)
        message = f"Invalid {first[0]}: {first[1][0]}" if first else "Invalid request."
        response.data = error_body(message, fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body(str(exc.detail), {"body": [str(exc.detail)]})
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        response.data = error_body(str(exc.detail), {"content_type": [str(exc.detail)]})
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(str(detail))
    return response


def not_found(request, exception: Exception | None = None):
    """The project's 404 page (handler404). Under /api/ it is the API's error shape, not HTML: a URL
    that matches no route (a capture id that is not a UUID) is still an API answer an agent can read."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(error_body("Not found."), status=404)
    return page_not_found(request, exception)
