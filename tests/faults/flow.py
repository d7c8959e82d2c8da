"""What the fault tests share: a capture from an agent through the real API, and an alert rule."""

import json
import uuid
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from safeguard.captures.models import Capture
from safeguard.policies.models import AlertRule
from tests.conftest import device_api_client
from tests.factories import AlertRuleFactory, KeywordFactory, png_bytes

KEYWORD = "blade"


def alert_rule(group, *recipients) -> AlertRule:
    """An immediate rule on `group` mailing `recipients`, and the severe keyword the captures match."""
    KeywordFactory(text=KEYWORD, severity="severe")
    rule = AlertRuleFactory(group=group)
    rule.recipients.set(recipients)
    return rule


def post_capture(token: str, *, user: str, capture_id: str | None = None) -> tuple[int, Capture | None]:
    """POST a capture as the agent does (a new one, or a resend of `capture_id`); returns (status, stored capture)."""
    metadata = {
        "id": capture_id or str(uuid.uuid4()),
        "occurred_at": (timezone.now() - timedelta(seconds=5)).isoformat(),
        "user": user,
        "keyword": KEYWORD,
        "severity": "severe",
        "context": "i want a blade",
        "application": "chrome.exe",
        "window_title": "Search - Google Chrome",
    }
    response = device_api_client(token).post(
        "/api/v1/agent/captures",
        {"metadata": json.dumps(metadata), "screenshot": SimpleUploadedFile("s.png", png_bytes(), "image/png")},
        format="multipart",
    )
    return response.status_code, Capture.objects.filter(uuid=metadata["id"]).first()
