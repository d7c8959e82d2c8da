"""Agent-facing API of the groups app (mounted under /api/v1/agent/): enrol, heartbeat, thumbnail."""

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from safeguard.core.authentication import DeviceAPIMixin
from safeguard.core.fields import OSUsernameField, has_time_zone
from safeguard.core.schema import (
    BAD_REQUEST,
    DEVICE_ERROR_RESPONSES,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    WWW_AUTHENTICATE_HEADER,
    AgentRequestSerializer,
    error_response,
)
from safeguard.core.uploads import validate_image_upload
from safeguard.groups.models import CommandType
from safeguard.groups.selectors import device_user_group_names
from safeguard.groups.services import (
    PAUSE_MAX_MINUTES,
    UNCHANGED,
    device_enrol,
    device_heartbeat,
    device_pause_with_pin,
    device_thumbnail_replace,
)

HEARTBEAT_EVENTS = [
    ("started", "The agent started monitoring"),
    ("paused", "Monitoring was paused (staff PIN)"),
    ("resumed", "Monitoring resumed after a pause"),
    ("stopping", "The agent is shutting down"),
]


def _no_control_characters(value: str) -> str:
    if any(ord(ch) < 32 for ch in value):
        raise serializers.ValidationError("must not contain control characters")
    return value


# -- enrol -------------------------------------------------------------------------------------


class EnrolSerializer(AgentRequestSerializer):
    code = serializers.CharField(
        max_length=64,
        help_text="The enrolment code an administrator issued (`manage.py create_enrolment_code`), "
        "e.g. ABCD-EFGH-JKLM-NPQR. Case, spaces and dashes do not matter.",
    )
    hostname = serializers.CharField(
        max_length=255, validators=[_no_control_characters], help_text="The computer's name, e.g. LAB1-PC07."
    )
    os = serializers.CharField(
        max_length=255,
        allow_blank=True,
        validators=[_no_control_characters],
        help_text="Operating system and version, e.g. 'Windows 11 Pro 23H2'.",
    )
    agent_version = serializers.CharField(
        max_length=64,
        allow_blank=True,
        validators=[_no_control_characters],
        help_text="Version of the Safeguard agent doing the enrolment, e.g. 1.0.0.",
    )


class EnrolResponseSerializer(serializers.Serializer):
    device_id = serializers.UUIDField(help_text="The new device's public identifier.")
    token = serializers.CharField(
        help_text="The device's API token, shown only this once (the server keeps only its hash). "
        "Send it as `Authorization: Device <token>` on every other call."
    )


class EnrolView(APIView):
    """The only unauthenticated agent endpoint: trade an enrolment code for a device token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="agent_enrol",
        tags=["agent"],
        summary="Enrol a device",
        description="Trades an enrolment code for a device identity and token. Each use of the code "
        "counts against its `max_uses`; an unknown, expired, revoked or used-up code is refused with "
        "400 naming `code`. Needs no authentication.",
        request=EnrolSerializer,
        responses={
            201: OpenApiResponse(EnrolResponseSerializer, description="Enrolled: keep the token safe."),
            400: BAD_REQUEST,
            413: PAYLOAD_TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = EnrolSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, token = device_enrol(**serializer.validated_data)
        body = EnrolResponseSerializer({"device_id": device.uuid, "token": token}).data
        return Response(body, status=status.HTTP_201_CREATED)


# -- heartbeat ---------------------------------------------------------------------------------


class ZonedDateTimeField(serializers.DateTimeField):
    """An ISO-8601 time that must carry a zone offset; unlike AgentTimestampField it may be in the future."""

    def to_internal_value(self, value):
        if isinstance(value, str) and not has_time_zone(value):
            raise serializers.ValidationError("must include a time zone offset")
        return super().to_internal_value(value)


class HeartbeatSerializer(AgentRequestSerializer):
    user = OSUsernameField(
        required=False,
        allow_null=True,
        help_text="The account logged on at the console, as the OS reports it (e.g. SCHOOL\\jsmith). "
        "It becomes the device's current user (created on first sight). Omit it or send null when "
        "nobody is logged on: the last known user is kept.",
    )
    agent_version = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        validators=[_no_control_characters],
        help_text="The running agent's version; stored when sent and not blank.",
    )
    monitoring_paused_until = ZonedDateTimeField(
        required=False,
        allow_null=True,
        help_text="When a pause of monitoring ends (ISO 8601 with a zone offset); null means not paused. "
        "Omit it to leave the stored value unchanged.",
    )
    event = serializers.ChoiceField(
        choices=HEARTBEAT_EVENTS,
        required=False,
        help_text="A change of monitoring state since the last heartbeat; each is written to the audit log.",
    )


class CommandSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="uuid", help_text="The command's identifier (for the agent's logs).")
    type = serializers.ChoiceField(
        choices=CommandType.choices, help_text="What to do; `record_screen` records the screen now."
    )
    params = serializers.DictField(
        help_text='The command\'s parameters, e.g. {"seconds": 30} for `record_screen`; may be empty.'
    )


class HeartbeatResponseSerializer(serializers.Serializer):
    commands = CommandSerializer(
        many=True,
        help_text="Commands staff queued for this device. Each is delivered in exactly one heartbeat "
        "answer, so the agent must act on it (or keep it) when it receives it.",
    )
    server_time = serializers.DateTimeField(help_text="The server's clock, to let the agent spot clock skew.")
    groups = serializers.ListField(
        child=serializers.CharField(),
        help_text="Names of the user groups the device's current user is in (direct memberships, sorted), "
        "for the agent's read-only 'Personal Groups' menu. Watch groups and staff members' personal "
        "groups are never listed.",
    )


class HeartbeatView(DeviceAPIMixin, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="agent_heartbeat",
        tags=["agent"],
        summary="Report that the device is alive",
        description="Marks the device seen, records its current user, pause state and agent version, "
        "writes start/pause/resume/stop events to the audit log, and returns pending commands.",
        request=HeartbeatSerializer,
        responses={
            200: OpenApiResponse(HeartbeatResponseSerializer, description="Recorded; here are the pending commands."),
            **DEVICE_ERROR_RESPONSES,
        },
        parameters=[WWW_AUTHENTICATE_HEADER],
    )
    def post(self, request: Request) -> Response:
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        commands = device_heartbeat(
            device=self.device(request),
            username=data.get("user") or None,
            agent_version=data.get("agent_version") or None,
            monitoring_paused_until=data.get("monitoring_paused_until", UNCHANGED),
            event=data.get("event") or None,
        )
        groups = device_user_group_names(device=self.device(request))
        body = HeartbeatResponseSerializer({"commands": commands, "server_time": timezone.now(), "groups": groups}).data
        return Response(body)


# -- thumbnail ---------------------------------------------------------------------------------

# The image itself; the request as a whole is capped at the same 2 MB by ApiBodySizeLimitMiddleware
# (SAFEGUARD_BODY_LIMITS), which answers 413 before the body is read.
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024


class ThumbnailSerializer(serializers.Serializer):
    image = serializers.FileField(
        help_text="A PNG, JPEG or WebP screenshot thumbnail of at most 2 MB. Replaces the previous one; "
        "the file name sent is ignored."
    )


class ThumbnailView(DeviceAPIMixin, APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="agent_thumbnail",
        tags=["agent"],
        summary="Upload the live screen thumbnail",
        description="Replaces the device's live thumbnail (shown to staff on the console's thumbnails "
        "page). The image must decode as PNG, JPEG or WebP; anything else is refused naming `image`.",
        request={"multipart/form-data": ThumbnailSerializer},
        responses={
            204: OpenApiResponse(description="Stored; the previous thumbnail is deleted."),
            **DEVICE_ERROR_RESPONSES,
        },
        parameters=[WWW_AUTHENTICATE_HEADER],
    )
    def post(self, request: Request) -> Response:
        image = request.FILES.get("image")
        extension = validate_image_upload(image, field="image", max_bytes=THUMBNAIL_MAX_BYTES)
        device_thumbnail_replace(device=self.device(request), image=image, extension=extension)
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- pause with the staff PIN ------------------------------------------------------------------


class PauseSerializer(AgentRequestSerializer):
    pin = serializers.CharField(
        max_length=128,
        trim_whitespace=False,
        help_text="The staff PIN as typed on the device; checked against the PIN set in the agent settings.",
    )
    minutes = serializers.IntegerField(
        min_value=1, max_value=PAUSE_MAX_MINUTES, help_text=f"How long to pause monitoring: 1 to {PAUSE_MAX_MINUTES}."
    )
    user = OSUsernameField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="The account logged on at the device, for the audit log (e.g. SCHOOL\\jsmith).",
    )


class PauseResponseSerializer(serializers.Serializer):
    monitoring_paused_until = serializers.DateTimeField(
        help_text="When the pause ends; the agent resumes monitoring then and says so in a heartbeat."
    )


class PauseView(DeviceAPIMixin, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="agent_pause",
        tags=["agent"],
        summary="Pause monitoring with the staff PIN",
        description="The agent's 'Disable Monitoring' menu: a member of staff types the PIN set in the "
        "agent settings. A right PIN pauses the device's monitoring for `minutes` (stored as its "
        "`monitoring_paused_until`, written to the audit log); a wrong one is refused with 403 and also "
        "audited. After 5 wrong PINs on one device within 15 minutes, tries are refused with 429 and a "
        "Retry-After header until the window passes. 403 also when no PIN is set on the server.",
        request=PauseSerializer,
        responses={
            200: OpenApiResponse(PauseResponseSerializer, description="Paused."),
            **DEVICE_ERROR_RESPONSES,
            403: error_response("Wrong PIN (field `pin`), or no staff PIN is set on the server."),
            429: error_response("Too many wrong PINs on this device recently; see Retry-After."),
        },
        parameters=[WWW_AUTHENTICATE_HEADER],
    )
    def post(self, request: Request) -> Response:
        serializer = PauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        until = device_pause_with_pin(
            device=self.device(request), pin=data["pin"], minutes=data["minutes"], username=data.get("user") or None
        )
        return Response(PauseResponseSerializer({"monitoring_paused_until": until}).data)


urlpatterns = [
    path("enrol", EnrolView.as_view(), name="agent-enrol"),
    path("heartbeat", HeartbeatView.as_view(), name="agent-heartbeat"),
    path("thumbnail", ThumbnailView.as_view(), name="agent-thumbnail"),
    path("pause", PauseView.as_view(), name="agent-pause"),
]
