"""Agent-facing API of the logs app: activity event batches (POST /api/v1/agent/events)."""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from safeguard.core.authentication import DeviceAPIMixin
from safeguard.core.fields import AgentTimestampField, OSUsernameField
from safeguard.core.schema import DEVICE_ERROR_RESPONSES, AgentRequestSerializer
from safeguard.logs.models import EventType
from safeguard.logs.services import event_batch_ingest


class StrictDataSerializer(serializers.Serializer):
    """An event's `data`: only the type's own keys, so nothing unvalidated is ever stored.

    Unlike the request envelope (where unknown fields are ignored for forward compatibility),
    `data` is stored as it is, so an unknown key is an error naming it.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError({key: ["unknown field for this event type"] for key in unknown})
        return dict(super().to_internal_value(data))


class WindowEventDataSerializer(StrictDataSerializer):
    """`data` of a `window` event: the window that came to the foreground."""

    title = serializers.CharField(
        max_length=1024, allow_blank=True, help_text="The window's title bar text (may be empty)."
    )
    application = serializers.CharField(max_length=255, help_text="The program owning the window, e.g. chrome.exe.")
    duration_seconds = serializers.IntegerField(
        min_value=0,
        max_value=31 * 24 * 3600,
        required=False,
        help_text="How long the window kept the focus with this title (the agent sends one event per stretch).",
    )


class WebsiteEventDataSerializer(StrictDataSerializer):
    """`data` of a `website` event: a page a browser showed."""

    url = serializers.CharField(max_length=2048, help_text="The page address as the browser reported it.")
    title = serializers.CharField(
        max_length=1024, allow_blank=True, required=False, help_text="The page title, when known."
    )
    browser = serializers.CharField(
        max_length=255, allow_blank=True, required=False, help_text="The browser program, e.g. firefox.exe."
    )


class ApplicationEventDataSerializer(StrictDataSerializer):
    """`data` of an `application` event: a program started or stopped."""

    name = serializers.CharField(max_length=255, help_text="The program's name, e.g. notepad.exe.")
    path = serializers.CharField(
        max_length=1024, allow_blank=True, required=False, help_text="The program's full path, when known."
    )
    action = serializers.ChoiceField(
        choices=["started", "stopped"], help_text="Whether the program `started` or `stopped`."
    )


class PrintEventDataSerializer(StrictDataSerializer):
    """`data` of a `print` event: a document sent to a printer."""

    document = serializers.CharField(
        max_length=1024, allow_blank=True, help_text="The document name the spooler reported (may be empty)."
    )
    printer = serializers.CharField(max_length=255, help_text="The printer's name.")
    pages = serializers.IntegerField(
        min_value=0, max_value=100_000, required=False, help_text="Number of pages, when the spooler knows it."
    )


class FileDeletedEventDataSerializer(StrictDataSerializer):
    """`data` of a `file_deleted` event: a file the user deleted."""

    path = serializers.CharField(max_length=2048, help_text="The deleted file's full path.")


class SessionEventDataSerializer(StrictDataSerializer):
    """`data` of a `logon` or `logoff` event: usually empty."""

    session = serializers.CharField(
        max_length=64,
        allow_blank=True,
        required=False,
        help_text="The OS session name, e.g. `console` or `rdp-tcp#0`, when known.",
    )


DATA_SERIALIZERS: dict[str, type[StrictDataSerializer]] = {
    EventType.WINDOW: WindowEventDataSerializer,
    EventType.WEBSITE: WebsiteEventDataSerializer,
    EventType.APPLICATION: ApplicationEventDataSerializer,
    EventType.PRINT: PrintEventDataSerializer,
    EventType.FILE_DELETED: FileDeletedEventDataSerializer,
    EventType.LOGON: SessionEventDataSerializer,
    EventType.LOGOFF: SessionEventDataSerializer,
}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="EventData",
        serializers=[
            WindowEventDataSerializer,
            WebsiteEventDataSerializer,
            ApplicationEventDataSerializer,
            PrintEventDataSerializer,
            FileDeletedEventDataSerializer,
            SessionEventDataSerializer,
        ],
        resource_type_field_name=None,
    )
)
class EventDataField(serializers.DictField):
    """A JSON object whose keys depend on the event's `type`; checked in EventSerializer.validate."""


class EventSerializer(serializers.Serializer):
    """One activity event as the agent reports it."""

    id = serializers.UUIDField(help_text="The event's UUID, made by the agent; a resend with the same id is harmless.")
    type = serializers.ChoiceField(choices=EventType.choices, help_text="What happened; decides the keys of `data`.")
    occurred_at = AgentTimestampField(
        help_text="When it happened: ISO-8601 with a time zone, not more than a few minutes in the future."
    )
    user = OSUsernameField(
        help_text="The OS account, e.g. `SCHOOL\\jsmith`; unknown people are created on first sight."
    )
    data = EventDataField(
        required=False,
        help_text="The type's fields: window {title, application, duration_seconds?}; website {url, title?, browser?}; "
        "application {name, path?, action}; print {document, printer, pages?}; file_deleted {path}; "
        "logon/logoff {session?}. Unknown keys are refused.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["data"] = self._data_serializer(attrs["type"]).run_validation(attrs.get("data") or {})
        except serializers.ValidationError as error:
            raise serializers.ValidationError({"data": error.detail}) from None
        return attrs

    def _data_serializer(self, event_type: str) -> StrictDataSerializer:
        """One `data` serializer per type for the whole batch, reused for every event of that type.

        A batch's events are validated by one EventSerializer (the list's child); building a
        fresh data serializer per event deep-copied its fields every time, which was a third of
        a batch's CPU time (bench/ingest.py). run_validation keeps no state between calls.
        """
        cache = self.__dict__.setdefault("_data_serializers", {})
        if event_type not in cache:
            cache[event_type] = DATA_SERIALIZERS[event_type]()
        return cache[event_type]


class EventBatchSerializer(AgentRequestSerializer):
    """A batch of activity events: all are stored, or (on any invalid event) none."""

    events = EventSerializer(
        many=True,
        allow_empty=False,
        help_text="1 to SAFEGUARD_MAX_EVENTS_PER_BATCH (1,000) events, each with a distinct `id`.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # Refuse an oversized batch before validating each of its events.
        if isinstance(data, Mapping) and isinstance(data.get("events"), list):
            limit = settings.SAFEGUARD_MAX_EVENTS_PER_BATCH
            if len(data["events"]) > limit:
                raise serializers.ValidationError({"events": [f"at most {limit} events per batch"]})
        return super().to_internal_value(data)

    def validate_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first_index: dict[Any, int] = {}
        errors: dict[str, dict[str, list[str]]] = {}
        for index, event in enumerate(events):
            if event["id"] in first_index:
                errors[str(index)] = {"id": [f"repeats the id of events.{first_index[event['id']]}"]}
            else:
                first_index[event["id"]] = index
        if errors:
            raise serializers.ValidationError(errors)
        return events


class EventBatchResultSerializer(serializers.Serializer):
    """The answer to an event batch."""

    accepted = serializers.IntegerField(help_text="How many events of the batch were stored now.")
    duplicates = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="Ids of the batch that were already stored (an earlier send); they were not stored again.",
    )


class EventBatchView(DeviceAPIMixin, APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="agent_events_create",
        summary="Report a batch of activity events",
        description="Stores windows, websites, applications, prints, deleted files, logons and logoffs. "
        "One invalid event refuses the whole batch (400, its field named `events.<index>.<field>`) "
        "and nothing is stored. Ids already stored are reported in `duplicates`, so resending a "
        "batch is harmless. A logon makes its user the device's current person.",
        request=EventBatchSerializer,
        responses={200: EventBatchResultSerializer, **DEVICE_ERROR_RESPONSES},
        tags=["agent"],
    )
    def post(self, request: Request) -> Response:
        serializer = EventBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = event_batch_ingest(device=self.device(request), events=serializer.validated_data["events"])
        return Response({"accepted": result.accepted, "duplicates": [str(event_id) for event_id in result.duplicates]})


urlpatterns = [
    path("events", EventBatchView.as_view(), name="agent-events"),
]
