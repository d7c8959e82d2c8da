"""The computer view (/console/devices/<id>/): current user and window, activity, captures, Record screen."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from safeguard.groups.models import CommandType, DeviceCommand
from safeguard.logs.models import AuditEntry, EventType
from safeguard.policies.models import AgentSettings
from tests.factories import (
    ActivityEventFactory,
    CaptureFactory,
    DeviceGroupFactory,
    MembershipFactory,
    StaffAccessFactory,
)

pytestmark = pytest.mark.django_db


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def desk(cast):
    """Pupil 9 at Y9-PC01 with a morning of activity; Pupil 10 used the same computer earlier."""
    device = cast.device9
    device.current_person = cast.pupil9
    device.save()
    now = timezone.now()
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        occurred_at=now - timedelta(minutes=5),
        data={"title": "Old window - Notepad", "application": "notepad.exe"},
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        occurred_at=now - timedelta(minutes=1),
        data={"title": "Photosynthesis - Wikipedia - Google Chrome", "application": "chrome.exe"},
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        type=EventType.WEBSITE,
        data={
            "url": "https://en.wikipedia.org/wiki/Photosynthesis",
            "title": "Photosynthesis",
            "browser": "chrome.exe",
        },
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        type=EventType.APPLICATION,
        data={"name": "WINWORD.EXE", "path": "C:\\Office\\WINWORD.EXE", "action": "started"},
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        type=EventType.PRINT,
        data={"document": "Biology homework.docx", "printer": "Library Printer", "pages": 3},
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil9,
        type=EventType.FILE_DELETED,
        data={"path": "C:\\Users\\y9pupil\\Documents\\old essay.docx"},
    )
    # Earlier that day the Year 10 pupil used this computer.
    ActivityEventFactory(
        device=device,
        person=cast.pupil10,
        occurred_at=now - timedelta(hours=3),
        data={"title": "Year ten private chat - Discord", "application": "Discord.exe"},
    )
    ActivityEventFactory(
        device=device,
        person=cast.pupil10,
        type=EventType.PRINT,
        occurred_at=now - timedelta(hours=3),
        data={"document": "Ten's letter.docx", "printer": "Library Printer"},
    )
    return device


def test_the_computer_view_shows_the_current_user_window_and_every_kind_of_activity(cast, desk):
    html = client_for(cast.teacher9).get(f"/console/devices/{desk.uuid}/").content.decode()

    now_section = html.split('id="now-heading"', 1)[1].split("</section>", 1)[0]
    assert "Nine Pupil" in now_section
    assert "Photosynthesis - Wikipedia - Google Chrome" in now_section and "chrome.exe" in now_section
    for heading in ("Recent windows", "Websites", "Applications", "Printed documents", "Deleted files"):
        assert heading in html
    assert "https://en.wikipedia.org/wiki/Photosynthesis" in html
    assert "WINWORD.EXE" in html and "started" in html
    assert "Biology homework.docx" in html and "Library Printer" in html and "3 pages" in html
    assert "old essay.docx" in html


def test_captures_on_the_device_link_to_the_capture_page(cast, desk):
    capture = CaptureFactory(person=cast.pupil9, device=desk, keyword__text="selfharmword")

    html = client_for(cast.teacher9).get(f"/console/devices/{desk.uuid}/").content.decode()

    assert f'href="/console/captures/{capture.uuid}/"' in html
    assert "selfharmword" in html


def test_on_a_device_seen_through_its_user_other_peoples_events_and_captures_are_hidden(cast, desk):
    hidden = CaptureFactory(person=cast.pupil10, device=desk, keyword__text="tenskeyword")

    html = client_for(cast.teacher9).get(f"/console/devices/{desk.uuid}/").content.decode()

    assert "Year ten private chat" not in html and "Ten&#x27;s letter" not in html and "Ten Pupil" not in html
    assert str(hidden.uuid) not in html and "tenskeyword" not in html


def test_staff_of_the_devices_group_see_everything_that_happened_on_it(cast, desk):
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=desk)
    technician = StaffAccessFactory(group=suite).user
    capture = CaptureFactory(person=cast.pupil10, device=desk)

    html = client_for(technician).get(f"/console/devices/{desk.uuid}/").content.decode()

    assert "Year ten private chat" in html and "Nine Pupil" in html
    assert str(capture.uuid) in html


def test_record_screen_queues_a_command_with_the_configured_length_and_audits_it(cast, desk):
    agent_settings = AgentSettings.load()
    agent_settings.recording_seconds = 45
    agent_settings.save()
    client = client_for(cast.teacher9)

    page = client.get(f"/console/devices/{desk.uuid}/").content.decode()
    assert f'action="/console/devices/{desk.uuid}/record"' in page and "Record screen (45 s)" in page
    response = client.post(f"/console/devices/{desk.uuid}/record")

    assert response.status_code == 302 and response["Location"] == f"/console/devices/{desk.uuid}/"
    command = DeviceCommand.objects.get(device=desk)
    assert (command.type, command.params, command.requested_by) == (
        CommandType.RECORD_SCREEN,
        {"seconds": 45},
        cast.teacher9,
    )
    assert command.delivered_at is None
    entry = AuditEntry.objects.get(action="device.command_record_screen")
    assert (entry.actor, entry.target_type, entry.target_id) == (cast.teacher9, "device", str(desk.uuid))
    assert "Asked Y9-PC01 to record 45 seconds" in client.get(response["Location"]).content.decode()


def test_record_screen_defaults_to_30_seconds(cast, desk):
    client_for(cast.lead).post(f"/console/devices/{desk.uuid}/record")

    assert DeviceCommand.objects.get().params == {"seconds": 30}


def test_record_screen_needs_the_view_recordings_right(cast, desk):
    cast.teacher9.group_access.update(can_view_recordings=False)
    client = client_for(cast.teacher9)

    page = client.get(f"/console/devices/{desk.uuid}/").content.decode()
    assert "Record screen" not in page
    assert client.post(f"/console/devices/{desk.uuid}/record").status_code == 404
    assert not DeviceCommand.objects.exists() and not AuditEntry.objects.exists()


def test_record_screen_is_a_csrf_protected_post(cast, desk):
    client = client_for(cast.teacher9, enforce_csrf_checks=True)

    assert client.get(f"/console/devices/{desk.uuid}/record").status_code == 405
    assert client.post(f"/console/devices/{desk.uuid}/record").status_code == 403
    assert not DeviceCommand.objects.exists()


def test_teacher9_cannot_see_year10_devices(cast):
    cast.device10.current_person = cast.pupil10
    cast.device10.save()
    ActivityEventFactory(device=cast.device10, person=cast.pupil10)
    client = client_for(cast.teacher9)

    assert client.get(f"/console/devices/{cast.device10.uuid}/").status_code == 404
    assert client.post(f"/console/devices/{cast.device10.uuid}/record").status_code == 404
    assert client.get(f"/console/devices/{cast.device10.uuid}/thumbnail").status_code == 404
    assert not DeviceCommand.objects.exists()


def test_a_device_whose_visible_user_left_is_no_longer_visible(cast, desk):
    desk.current_person = cast.pupil10
    desk.save()

    assert client_for(cast.teacher9).get(f"/console/devices/{desk.uuid}/").status_code == 404
