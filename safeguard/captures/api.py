"""Agent-facing API of the captures app: captures with their screenshot, and their screen recordings.

POST /api/v1/agent/captures                     multipart: metadata (JSON string) + screenshot
POST /api/v1/agent/captures/<uuid>/recording    multipart: recording (MP4) + started_at?, duration_seconds?
POST /api/v1/agent/recordings                   multipart: recording (MP4) + command_id, started_at?, duration_seconds?
"""

import json
from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from safeguard.captures.models import CaptureStatus
from safeguard.captures.services import capture_ingest, recording_attach, recording_store_on_demand
from safeguard.core.authentication import DeviceAPIMixin
from safeguard.core.fields import AgentTimestampField, OSUsernameField
from safeguard.core.schema import DEVICE_ERROR_RESPONSES, error_response
from safeguard.core.uploads import validate_image_upload, validate_mp4_upload
from safeguard.policies.models import Severity


class CaptureMetadataSerializer(serializers.Serializer):
    """What the agent knows about a keyword match, sent as the JSON `metadata` part."""

    id = serializers.UUIDField(
        help_text="The capture's UUID, made by the agent; a resend with the same id is harmless."
    )
    occurred_at = AgentTimestampField(help_text="When the keyword matched: ISO-8601 with a time zone.")
    user = OSUsernameField(help_text="The OS account that typed or viewed it, e.g. `SCHOOL\\jsmith`.")
    keyword = serializers.CharField(max_length=200, help_text="The keyword or phrase that matched, as in the config.")
    severity = serializers.ChoiceField(choices=Severity.choices, help_text="The keyword's severity in the config.")
    context = serializers.CharField(
        max_length=400,
        allow_blank=True,
        required=False,
        default="",
        trim_whitespace=False,
        help_text="Text around the match (the agent sends about 80 characters); at most 400.",
    )
    application = serializers.CharField(
        max_length=255, allow_blank=True, required=False, default="", help_text="The program in use, e.g. chrome.exe."
    )
    window_title = serializers.CharField(
        max_length=1024, allow_blank=True, required=False, default="", help_text="The foreground window's title."
    )
    url = serializers.CharField(
        max_length=2048, allow_blank=True, required=False, default="", help_text="The browser's address, when known."
    )
    policy = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The keyword policy's UUID from the config. When absent, the server finds the policy "
        "from the keyword text (the most severe enabled keyword with that text).",
    )


@extend_schema_field(CaptureMetadataSerializer)
class JSONMetadataField(serializers.Field):
    """A multipart text part holding a JSON object, validated by CaptureMetadataSerializer.

    Errors inside the object come out dotted under the part's name (`metadata.keyword`).
    """

    default_error_messages = {
        "not_text": "must be a JSON object sent as a text part, not a file",
        "not_json": "is not valid JSON",
        "not_object": "must be a JSON object",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, str):
            self.fail("not_text")
        try:
            parsed = json.loads(data)
        except ValueError:
            self.fail("not_json")
        if not isinstance(parsed, dict):
            self.fail("not_object")
        metadata = CaptureMetadataSerializer(data=parsed)
        if not metadata.is_valid():
            raise serializers.ValidationError(metadata.errors)
        return dict(metadata.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


class CaptureUploadSerializer(serializers.Serializer):
    """A capture: its metadata and its screenshot, as multipart/form-data."""

    metadata = JSONMetadataField(
        help_text="A JSON object (sent as a text part, Content-Type application/json or text/plain) with "
        "the capture's fields: id, occurred_at, user, keyword, severity, context, application, "
        "window_title, url and optionally policy."
    )
    screenshot = serializers.FileField(
        help_text="The screenshot taken when the keyword matched: PNG, JPEG or WebP, at most "
        "SAFEGUARD_SCREENSHOT_MAX_BYTES (20 MiB). It must decode; absurd dimensions are refused."
    )


class CaptureReceiptSerializer(serializers.Serializer):
    """The answer to a capture upload."""

    id = serializers.UUIDField(help_text="The capture's UUID (the one the agent sent).")
    status = serializers.ChoiceField(
        choices=CaptureStatus.choices, help_text="The capture's review status; `new` for a capture just stored."
    )


class RecordingUploadSerializer(serializers.Serializer):
    """A capture's screen recording, as multipart/form-data."""

    recording = serializers.FileField(
        help_text="The recording: an MP4 (H.264) video, at most SAFEGUARD_RECORDING_MAX_BYTES (64 MiB)."
    )
    started_at = AgentTimestampField(
        required=False,
        help_text="When the recording started: ISO-8601 with a time zone. Defaults to the capture's time.",
    )
    duration_seconds = serializers.FloatField(
        required=False, min_value=0, max_value=3600, help_text="The recording's length in seconds, when known."
    )


class RecordingReceiptSerializer(serializers.Serializer):
    """The answer to a recording upload."""

    id = serializers.UUIDField(help_text="The recording's UUID (made by the server).")
    capture = serializers.UUIDField(help_text="The UUID of the capture it belongs to.")


class CaptureUploadView(DeviceAPIMixin, APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="agent_captures_create",
        summary="Report a capture (a keyword match) with its screenshot",
        description="Stores the capture and its screenshot; the console preview is made in the "
        "background. Answers 201 when stored, 200 (and stores nothing) when this device already "
        "reported a capture with this id, whatever screenshot comes with the resend. An id already "
        "used by another device is refused with 409 and a neutral message.",
        request=OpenApiRequest(
            request=CaptureUploadSerializer,
            encoding={"metadata": {"contentType": "application/json"}},
        ),
        responses={
            201: OpenApiResponse(CaptureReceiptSerializer, description="The capture was stored."),
            200: OpenApiResponse(CaptureReceiptSerializer, description="Already stored: a resend; nothing new."),
            **DEVICE_ERROR_RESPONSES,
            409: error_response("The capture id is already used by another device (field `metadata.id`)."),
        },
        tags=["agent"],
    )
    def post(self, request: Request) -> Response:
        serializer = CaptureUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        screenshot = serializer.validated_data["screenshot"]
        extension = validate_image_upload(
            screenshot, field="screenshot", max_bytes=settings.SAFEGUARD_SCREENSHOT_MAX_BYTES
        )
        capture, created = capture_ingest(
            device=self.device(request),
            metadata=serializer.validated_data["metadata"],
            screenshot=screenshot,
            extension=extension,
        )
        return Response(
            {"id": str(capture.uuid), "status": capture.status},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RecordingUploadView(DeviceAPIMixin, APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="agent_captures_recording_create",
        summary="Upload the screen recording of a capture",
        description="Attaches the recording the agent made after a severe match to that capture "
        "(visible to staff who may see the capture's group and recordings). 201 when stored; 200 "
        "and nothing new when the capture already has its recording. A capture this device did "
        "not report answers 404, like an unknown one.",
        parameters=[
            OpenApiParameter(
                "capture_uuid",
                OpenApiTypes.UUID,
                OpenApiParameter.PATH,
                description="The UUID of the capture (as the agent sent it in the capture's metadata).",
            )
        ],
        request=RecordingUploadSerializer,
        responses={
            201: OpenApiResponse(RecordingReceiptSerializer, description="The recording was stored."),
            200: OpenApiResponse(RecordingReceiptSerializer, description="Already stored: a resend; nothing new."),
            **DEVICE_ERROR_RESPONSES,
            404: error_response("No capture with this id was reported by this device."),
        },
        tags=["agent"],
    )
    def post(self, request: Request, capture_uuid) -> Response:
        serializer = RecordingUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["recording"]
        validate_mp4_upload(upload, field="recording", max_bytes=settings.SAFEGUARD_RECORDING_MAX_BYTES)
        recording, created = recording_attach(
            device=self.device(request),
            capture_uuid=capture_uuid,
            upload=upload,
            started_at=serializer.validated_data.get("started_at"),
            duration_seconds=serializer.validated_data.get("duration_seconds"),
        )
        return Response(
            {"id": str(recording.uuid), "capture": str(capture_uuid)},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class OnDemandRecordingUploadSerializer(RecordingUploadSerializer):
    """A recording staff asked for with a `record_screen` command, as multipart/form-data."""

    command_id = serializers.UUIDField(
        help_text="The `id` of the `record_screen` command (from a heartbeat answer) this recording fulfils."
    )
    started_at = AgentTimestampField(
        required=False,
        help_text="When the recording started: ISO-8601 with a time zone. Defaults to when the command was delivered.",
    )


class OnDemandRecordingReceiptSerializer(serializers.Serializer):
    """The answer to an on-demand recording upload."""

    id = serializers.UUIDField(help_text="The recording's UUID: the same as the command's.")
    command_id = serializers.UUIDField(help_text="The command it fulfils.")


class OnDemandRecordingUploadView(DeviceAPIMixin, APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="agent_recordings_create",
        summary="Upload a screen recording staff asked for (record_screen command)",
        description="Stores the recording a device made for a `record_screen` command, owned by the staff "
        "member who asked (private to them if the command said so). 201 when stored; 200 and nothing new "
        "when this command already has its recording (a resend). A command that is not a record-screen "
        "command sent to this device answers 404 naming `command_id`.",
        request=OnDemandRecordingUploadSerializer,
        responses={
            201: OpenApiResponse(OnDemandRecordingReceiptSerializer, description="The recording was stored."),
            200: OpenApiResponse(OnDemandRecordingReceiptSerializer, description="Already stored: a resend."),
            **DEVICE_ERROR_RESPONSES,
            404: error_response("No record-screen command with this id was sent to this device (field `command_id`)."),
        },
        tags=["agent"],
    )
    def post(self, request: Request) -> Response:
        serializer = OnDemandRecordingUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["recording"]
        validate_mp4_upload(upload, field="recording", max_bytes=settings.SAFEGUARD_RECORDING_MAX_BYTES)
        recording, created = recording_store_on_demand(
            device=self.device(request),
            command_uuid=data["command_id"],
            upload=upload,
            started_at=data.get("started_at"),
            duration_seconds=data.get("duration_seconds"),
        )
        return Response(
            {"id": str(recording.uuid), "command_id": str(data["command_id"])},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


urlpatterns = [
    path("captures", CaptureUploadView.as_view(), name="agent-captures"),
    path("captures/<uuid:capture_uuid>/recording", RecordingUploadView.as_view(), name="agent-capture-recording"),
    path("recordings", OnDemandRecordingUploadView.as_view(), name="agent-recordings"),
]
