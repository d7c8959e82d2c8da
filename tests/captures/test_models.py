"""Capture identity comes from the agent and is unique."""

import pytest
from django.db import IntegrityError, transaction

from safeguard.captures.models import Capture, CaptureStatus
from tests.factories import CaptureFactory

pytestmark = pytest.mark.django_db


def test_a_capture_uuid_is_stored_once():
    capture = CaptureFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        CaptureFactory(uuid=capture.uuid)
    assert Capture.objects.count() == 1


def test_a_new_capture_is_unreviewed_until_its_status_changes():
    capture = CaptureFactory()
    assert capture.status == CaptureStatus.NEW and not capture.is_reviewed
    capture.status = CaptureStatus.UNDER_REVIEW
    assert capture.is_reviewed


def test_the_screenshot_is_stored_under_our_own_name_not_the_clients():
    capture = CaptureFactory()
    assert capture.screenshot.name.endswith(f"{capture.uuid}.png")
