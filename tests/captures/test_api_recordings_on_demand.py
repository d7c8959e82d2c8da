"""POST /api/v1/agent/recordings: the recording a device made for a staff member's record_screen command."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from safeguard.captures.models import Recording
from safeguard.groups.models import CommandType, Device
from safeguard.groups.services import device_command_request
from tests.conftest import device_api_client
from tests.factories import PersonFactory, StaffUserFactory, enrolled_device

URL = "/api/v1/agent/recordings"
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + bytes(range(256)) * 40


def post(client, *, command_id, recording: bytes | None = MP4, **fields):
    body = {"command_id": str(command_id), **fields}
    if recording is not None:
        body["recording"] = SimpleUploadedFile("rec.mp4", recording, content_type="video/mp4")
    return client.post(URL, body, format="multipart")


def recording_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "recordings"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.fixture
def teacher(db):
    return StaffUserFactory(username="mr-head")


@pytest.fixture
def command(device_client, teacher):
    pupil = PersonFactory(username="SCHOOL\\onscreen")
    Device.objects.filter(pk=device_client.device.pk).update(current_person=pupil)
    made = device_command_request(
        device=device_client.device, type=CommandType.RECORD_SCREEN, params={"seconds": 30}, requested_by=teacher
    )
    made.pupil = pupil
    return made


@pytest.mark.django_db
def test_the_recording_is_stored_owned_by_the_staff_member_who_asked(device_client, command, teacher, settings):
    started = timezone.now() - timedelta(seconds=40)

    response = post(device_client, command_id=command.uuid, started_at=started.isoformat(), duration_seconds="30")

    assert response.status_code == 201, response.content
    assert response.json() == {"id": str(command.uuid), "command_id": str(command.uuid)}
    recording = Recording.objects.get()
    assert recording.uuid == command.uuid
    assert recording.capture is None
    assert recording.owner == teacher
    assert recording.device == device_client.device
    assert recording.person == command.pupil
    assert recording.started_at == started
    assert recording.duration_seconds == 30.0
    assert recording.visibility == Recording.Visibility.PUBLIC
    assert recording.size_bytes == len(MP4)
    assert [path.read_bytes() for path in recording_files(settings)] == [MP4]


@pytest.mark.django_db
def test_a_resend_stores_nothing_new(device_client, command, settings):
    first = post(device_client, command_id=command.uuid)
    again = post(device_client, command_id=command.uuid)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Recording.objects.count() == 1
    assert len(recording_files(settings)) == 1


@pytest.mark.django_db
def test_without_started_at_the_delivery_time_is_used(device_client, command):
    delivered = timezone.now() - timedelta(minutes=2)
    type(command).objects.filter(pk=command.pk).update(delivered_at=delivered)

    assert post(device_client, command_id=command.uuid).status_code == 201
    assert Recording.objects.get().started_at == delivered


@pytest.mark.django_db
def test_a_private_command_makes_a_private_recording(device_client, teacher):
    private = device_command_request(
        device=device_client.device,
        type=CommandType.RECORD_SCREEN,
        params={"seconds": 10, "private": True},
        requested_by=teacher,
    )
    assert post(device_client, command_id=private.uuid).status_code == 201
    assert Recording.objects.get().visibility == Recording.Visibility.PRIVATE


@pytest.mark.django_db
def test_someone_elses_command_is_404_like_an_unknown_one(device_client, teacher, settings):
    other_device, _ = enrolled_device()
    theirs = device_command_request(
        device=other_device, type=CommandType.RECORD_SCREEN, params={"seconds": 30}, requested_by=teacher
    )
    for command_id in (theirs.uuid, uuid.uuid4()):
        response = post(device_client, command_id=command_id)
        assert response.status_code == 404, response.content
        assert set(response.json()) == {"error", "fields"}
        assert "command_id" in response.json()["fields"]
    assert Recording.objects.count() == 0
    assert recording_files(settings) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recording": b"not a video at all"}, "recording"),
        ({"recording": None}, "recording"),
        ({"command_id": "not-a-uuid"}, "command_id"),
        ({"started_at": "2026-01-01T10:00:00"}, "started_at"),
        ({"duration_seconds": "-1"}, "duration_seconds"),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(device_client, command, settings, fields, field):
    body = {"command_id": command.uuid, **fields}
    response = post(device_client, **body)
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert Recording.objects.count() == 0
    assert recording_files(settings) == []


@pytest.mark.django_db
def test_without_a_device_token_it_is_401(command):
    response = post(device_api_client("not-a-token"), command_id=command.uuid)
    assert response.status_code == 401
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_a_recording_the_size_of_a_real_one_passes_the_body_limit(device_client, command, settings):
    """1 MB is the default agent body limit; this endpoint has the recordings' own (64 MB)."""
    big = MP4 + b"\x00" * (3 * 1024 * 1024)
    assert post(device_client, command_id=command.uuid, recording=big).status_code == 201
