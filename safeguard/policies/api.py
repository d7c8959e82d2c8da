"""Agent-facing API of the policies app (mounted under /api/v1/agent/): the agent's config."""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from safeguard.core.authentication import DeviceAPIMixin
from safeguard.core.schema import UNAUTHORIZED, WWW_AUTHENTICATE_HEADER
from safeguard.policies.models import Category, MatchKind, Severity
from safeguard.policies.selectors import agent_config_for_device


class ConfigKeywordSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The keyword's identifier; captures name it as `keyword_id`.")
    text = serializers.CharField(help_text="The word, phrase or abbreviation to look for.")
    match_kind = serializers.ChoiceField(
        choices=MatchKind.choices,
        help_text="How to match: a whole `word`, a `phrase` of words, or an `abbreviation`.",
    )
    severity = serializers.ChoiceField(choices=Severity.choices, help_text="How serious a match is, low to severe.")
    join_spaced = serializers.BooleanField(
        help_text="Also match the keyword typed with its letters spaced out or dotted ('s u i c i d e')."
    )
    requires_nearby = serializers.ListField(
        child=serializers.CharField(),
        help_text="Words of which one must appear within `window` words before the keyword fires; empty: always.",
    )
    window = serializers.IntegerField(help_text="How many words either side count as nearby for `requires_nearby`.")


class ConfigPolicySerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The policy's identifier.")
    name = serializers.CharField(help_text="The policy's name, e.g. 'Self-harm (UK English)'.")
    category = serializers.ChoiceField(choices=Category.choices, help_text="The area of concern the policy covers.")
    illegal_content = serializers.BooleanField(
        help_text="True for illegal-content policies: their captures are handled specially by the server."
    )
    keywords = ConfigKeywordSerializer(many=True, help_text="The policy's enabled keywords.")
    allow_phrases = serializers.ListField(
        child=serializers.CharField(),
        help_text="Phrases that silence this policy's hits inside them ('kill time', 'diet coke').",
    )


class AgentSettingsSerializer(serializers.Serializer):
    thumbnail_interval_seconds = serializers.IntegerField(help_text="Seconds between live thumbnail uploads.")
    heartbeat_interval_seconds = serializers.IntegerField(help_text="Seconds between heartbeats.")
    config_refresh_seconds = serializers.IntegerField(help_text="Seconds between fetches of this config.")
    recording_seconds = serializers.IntegerField(help_text="Length of the screen recording of a severe capture.")
    confide_desktop_button = serializers.BooleanField(
        help_text="Whether to show a 'Report a concern' (Confide) button on the desktop."
    )
    console_url = serializers.URLField(help_text="The staff console's address, for links the agent shows.")


class AgentConfigSerializer(serializers.Serializer):
    version = serializers.CharField(
        help_text="SHA-256 of the canonical JSON of `policies` and `settings`; also sent as the strong ETag."
    )
    policies = ConfigPolicySerializer(
        many=True,
        help_text="The keyword policies that apply to this device and its current user, ordered by name.",
    )
    settings = AgentSettingsSerializer(help_text="Agent behaviour settings.")


class ConfigView(DeviceAPIMixin, APIView):
    @extend_schema(
        operation_id="agent_config",
        tags=["agent"],
        summary="Fetch the keyword policies and settings for this device",
        description="Policies apply when enabled and either applied to everyone or applied to a group "
        "(or an ancestor group) of the device or its current user; an exclusion on one of the device's "
        "groups always wins. Send the last `ETag` in `If-None-Match` to get 304 when nothing changed.",
        parameters=[
            OpenApiParameter(
                "If-None-Match",
                type=str,
                location=OpenApiParameter.HEADER,
                description="The ETag of the config the agent already has; answered with 304 if unchanged.",
            ),
            OpenApiParameter(
                "ETag",
                type=str,
                location=OpenApiParameter.HEADER,
                response=[200, 304],
                description="Strong entity tag of this config: the quoted `version`.",
            ),
            WWW_AUTHENTICATE_HEADER,
        ],
        responses={
            200: OpenApiResponse(AgentConfigSerializer, description="The current config."),
            304: OpenApiResponse(description="Not modified: the agent's copy (If-None-Match) is current. No body."),
            401: UNAUTHORIZED,
        },
    )
    def get(self, request: Request) -> Response:
        config = agent_config_for_device(device=self.device(request))
        etag = f'"{config["version"]}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(config, headers=headers)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses weak comparison (RFC 9110 13.1.2): a W/ prefix does not matter; * matches."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


urlpatterns = [
    path("config", ConfigView.as_view(), name="agent-config"),
]
