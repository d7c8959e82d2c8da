"""DRF fields shared by the agent API."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers


class AgentTimestampField(serializers.DateTimeField):
    """An ISO-8601 time with a zone, refused when further in the future than clock skew explains."""

    default_error_messages = {
        "future": "is in the future (more than {seconds} s ahead of the server)",
        "naive": "must include a time zone offset",
    }

    def to_internal_value(self, value) -> datetime:
        if isinstance(value, str) and not has_time_zone(value):
            self.fail("naive")
        parsed = super().to_internal_value(value)
        skew = settings.SAFEGUARD_MAX_FUTURE_SKEW_SECONDS
        if parsed > timezone.now() + timedelta(seconds=skew):
            self.fail("future", seconds=skew)
        return parsed


def has_time_zone(value: str) -> bool:
    """Whether an ISO-8601 time string carries a zone (Z or an offset): naive times are ambiguous."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        return True
    time_part = text.partition("T")[2] or text.partition(" ")[2]
    return "+" in time_part or "-" in time_part


class OSUsernameField(serializers.CharField):
    """An account name as the OS reports it (``DOMAIN\\name`` or ``name``); trimmed, no control characters."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 255)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        value = super().to_internal_value(data)
        if any(ord(ch) < 32 for ch in value):
            raise serializers.ValidationError("must not contain control characters")
        return value


class AgentUUIDField(serializers.UUIDField):
    """A UUID given as a string. DRF's UUIDField also takes an integer (UUID(int=12)), which would
    silently turn an agent bug into a made-up identifier; refuse anything but a string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)
