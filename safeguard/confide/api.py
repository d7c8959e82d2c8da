"""Agent-facing API of the Confide app (mounted under /api/v1/agent/): reports and assistance requests."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from safeguard.confide.models import ConfideReport
from safeguard.confide.services import assistance_request_submit, confide_report_submit
from safeguard.core.authentication import DeviceAPIMixin
from safeguard.core.fields import AgentTimestampField, AgentUUIDField, OSUsernameField
from safeguard.core.schema import DEVICE_ERROR_RESPONSES, WWW_AUTHENTICATE_HEADER, AgentRequestSerializer


class SubmittedSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The identifier the agent sent: stored once, resends change nothing.")


CREATED = OpenApiResponse(SubmittedSerializer, description="Stored.")
ALREADY_STORED = OpenApiResponse(SubmittedSerializer, description="This id was stored before; nothing changed.")


class ConfideSerializer(AgentRequestSerializer):
    id = AgentUUIDField(
        help_text="A UUID the agent gives the report; resending the same id is harmless (answered 200)."
    )
    message = serializers.CharField(
        max_length=5000, help_text="What the pupil wants to tell staff (1-5000 characters)."
    )
    about = serializers.ChoiceField(
        choices=ConfideReport.About.choices, help_text="Whether the concern is about the pupil or someone else."
    )
    anonymous = serializers.BooleanField(
        help_text="Send anonymously: the server then stores no user and no device, and the time only to the hour."
    )
    user = OSUsernameField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="The reporting account (e.g. SCHOOL\\jsmith). Required unless `anonymous`; ignored and "
        "never stored when `anonymous` is true.",
    )
    occurred_at = AgentTimestampField(help_text="When the pupil sent the report (ISO 8601 with zone offset).")

    def to_internal_value(self, data):
        # An anonymous report's user is dropped before validation: nothing downstream can store or
        # log it, and a malformed value in a field we ignore must not cost the pupil their report.
        try:
            anonymous = self.fields["anonymous"].to_internal_value(data.get("anonymous"))
        except serializers.ValidationError:
            anonymous = False  # reported by the field's own validation below
        if anonymous:
            data = {key: value for key, value in data.items() if key != "user"}
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        if attrs["anonymous"]:
            attrs.pop("user", None)
        elif not attrs.get("user"):
            raise serializers.ValidationError({"user": ["required unless the report is anonymous"]})
        return attrs


class ConfideView(DeviceAPIMixin, APIView):
    parser_classes = [JSONParser]
    record_token_use = False  # the token is checked, its use not written down (DeviceAPIMixin)

    @extend_schema(
        operation_id="agent_confide",
        tags=["agent"],
        summary="Submit a Confide report",
        description="A pupil's concern, for staff with Confide access. Answers 201 when stored, 200 when "
        "this id was already stored (nothing changes). An anonymous report keeps no trace of the sender.",
        request=ConfideSerializer,
        responses={201: CREATED, 200: ALREADY_STORED, **DEVICE_ERROR_RESPONSES},
        parameters=[WWW_AUTHENTICATE_HEADER],
    )
    def post(self, request: Request) -> Response:
        serializer = ConfideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report, created = confide_report_submit(
            uuid=data["id"],
            message=data["message"],
            about=data["about"],
            anonymous=data["anonymous"],
            occurred_at=data["occurred_at"],
            device=self.device(request),
            username=data.get("user"),
        )
        return Response(
            SubmittedSerializer({"id": report.uuid}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AssistanceSerializer(AgentRequestSerializer):
    id = AgentUUIDField(
        help_text="A UUID the agent gives the request; resending the same id is harmless (answered 200)."
    )
    user = OSUsernameField(help_text="The account asking for help, e.g. SCHOOL\\jsmith.")
    message = serializers.CharField(
        required=False, allow_blank=True, max_length=5000, default="", help_text="An optional note (0-5000 characters)."
    )
    occurred_at = AgentTimestampField(help_text="When the pupil asked (ISO 8601 with zone offset).")


class AssistanceView(DeviceAPIMixin, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="agent_assistance",
        tags=["agent"],
        summary="Ask staff for assistance",
        description="A pupil asked for help from the tray menu. Answers 201 when stored, 200 when this id "
        "was already stored (nothing changes).",
        request=AssistanceSerializer,
        responses={201: CREATED, 200: ALREADY_STORED, **DEVICE_ERROR_RESPONSES},
        parameters=[WWW_AUTHENTICATE_HEADER],
    )
    def post(self, request: Request) -> Response:
        serializer = AssistanceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assistance, created = assistance_request_submit(
            uuid=data["id"],
            device=self.device(request),
            username=data["user"],
            message=data["message"],
            occurred_at=data["occurred_at"],
        )
        return Response(
            SubmittedSerializer({"id": assistance.uuid}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


urlpatterns = [
    path("confide", ConfideView.as_view(), name="agent-confide"),
    path("assistance", AssistanceView.as_view(), name="agent-assistance"),
]
