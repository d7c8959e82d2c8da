"""OpenAPI pieces shared by every agent endpoint: the error shape and the Device auth scheme.

Import `ErrorSerializer` (and the ready-made `ERROR_RESPONSES` helpers) in `@extend_schema`
so every documented rejection carries the one error shape of `safeguard.core.api`.
"""

from collections.abc import Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The body of every API rejection (4xx): see `safeguard.core.api.exception_handler`."""

    error = serializers.CharField(help_text="A human-readable sentence saying why the request was refused.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='The fields at fault, each with its reasons, e.g. {"code": ["unknown, expired, revoked or used up"]}. '
        "Nested fields are dotted (events.0.occurred_at); `body` means the request body as a whole "
        "(malformed JSON, too large). Empty when no single field is to blame.",
    )


class AgentRequestSerializer(serializers.Serializer):
    """Base for agent request bodies: a body that is not a JSON object is refused naming `body`.

    (DRF would otherwise report a list or `null` body under `non_field_errors`.) Unknown fields
    are ignored, so newer agents can send more than an older server understands.
    """

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"body": ["must be a JSON object"]})
        # DRF's CharField turns a number into its digits; the schema says "string", so a number
        # (or a list, or an object) where text belongs is refused naming the field, not stored.
        not_text = {
            name: ["must be a string"]
            for name, field in self.fields.items()
            if isinstance(field, serializers.CharField)
            and not field.read_only
            and data.get(name) is not None
            and not isinstance(data.get(name), str)
        }
        if not_text:
            raise serializers.ValidationError(not_text)
        return super().run_validation(data)


def error_response(description: str) -> OpenApiResponse:
    """An OpenAPI response in the error shape with this description."""
    return OpenApiResponse(response=ErrorSerializer, description=description)


BAD_REQUEST = error_response("Invalid input: malformed JSON (field `body`) or fields that failed validation.")
UNAUTHORIZED = error_response(
    "Missing, malformed, forged or revoked device token, or a revoked device. "
    "Carries `WWW-Authenticate: Device`; the agent must re-enrol."
)
PAYLOAD_TOO_LARGE = error_response("The request body exceeds this endpoint's size limit (field `body`).")
UNSUPPORTED_MEDIA_TYPE = error_response("The Content-Type is not one this endpoint accepts (field `content_type`).")

# The rejections any device-authenticated endpoint may answer with.
DEVICE_ERROR_RESPONSES = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
}


# Add to `parameters=` of device-authenticated endpoints: documents the challenge on 401.
WWW_AUTHENTICATE_HEADER = OpenApiParameter(
    "WWW-Authenticate",
    type=str,
    location=OpenApiParameter.HEADER,
    response=[401],
    description="Always `Device`: the scheme the agent API expects.",
)


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Device <token>` for endpoints using DeviceTokenAuthentication."""

    target_class = "safeguard.core.authentication.DeviceTokenAuthentication"
    name = "DeviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Send `Authorization: Device <token>`, with the token returned once by "
            "`POST /api/v1/agent/enrol`. Tokens are stored hashed; revoking the token or the device "
            "makes every call answer 401.",
        }
