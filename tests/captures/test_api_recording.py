"""POST /api/v1/agent/captures/<uuid>/recording: a capture's screen recording, attached once."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection
from django.utils import timezone

from safeguard.captures.models import Recording
from safeguard.captures.services import recording_attach
from safeguard.groups.services import device_revoke
from tests.conftest import device_api_client
from tests.factories import CaptureFactory, enrolled_device

# The start of a real H.264 MP4 (an `ftyp` box with the isom brand), then payload bytes.
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + bytes(range(256)) * 40


def url(capture_uuid) -> str:
    return f"/api/v1/agent/captures/{capture_uuid}/recording"


def post_recording(client, capture_uuid, *, recording: bytes | None = MP4, content_type="video/mp4", **fields):
    body = dict(fields)
    if recording is not None:
        body["recording"] = SimpleUploadedFile("rec.mp4", recording, content_type=content_type)
    return client.post(url(capture_uuid), body, format="multipart")


def recording_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "recordings"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def assert_refused(response, field: str | None, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "fields"}
    if field is not None:
        assert field in body["fields"], body
    return body


@pytest.fixture
def own_capture(device_client):
    return CaptureFactory(device=device_client.device, occurred_at=timezone.now() - timedelta(minutes=1))


@pytest.mark.django_db
def test_a_recording_is_attached_to_the_capture(device_client, own_capture, settings):
    started = timezone.now() - timedelta(seconds=50)

    response = post_recording(device_client, own_capture.uuid, started_at=started.isoformat(), duration_seconds="30.5")

    assert response.status_code == 201, response.content
    recording = Recording.objects.get()
    assert response.json() == {"id": str(recording.uuid), "capture": str(own_capture.uuid)}
    assert recording.capture == own_capture
    assert recording.device == device_client.device
    assert recording.person == own_capture.person
    assert recording.visibility == Recording.Visibility.PUBLIC
    assert recording.owner is None
    assert recording.started_at == started
    assert recording.duration_seconds == 30.5
    assert recording.size_bytes == len(MP4)
    assert recording.file.name.startswith("recordings/") and recording.file.name.endswith(f"{recording.uuid}.mp4")
    with recording.file.open("rb") as stored:
        assert stored.read() == MP4
    assert recording_files(settings) == [Path(settings.MEDIA_ROOT) / recording.file.name]


@pytest.mark.django_db
def test_without_a_start_time_the_recording_starts_at_the_capture(device_client, own_capture):
    response = post_recording(device_client, own_capture.uuid)

    assert response.status_code == 201, response.content
    recording = Recording.objects.get()
    assert recording.started_at == own_capture.occurred_at
    assert recording.duration_seconds is None


@pytest.mark.django_db
def test_a_resend_answers_200_and_stores_nothing_new(device_client, own_capture, settings):
    first = post_recording(device_client, own_capture.uuid)
    again = post_recording(device_client, own_capture.uuid, recording=MP4 + b"different")

    assert first.status_code == 201
    assert again.status_code == 200, again.content
    assert again.json() == first.json()
    assert Recording.objects.count() == 1
    assert len(recording_files(settings)) == 1
    with Recording.objects.get().file.open("rb") as stored:
        assert stored.read() == MP4


@pytest.mark.django_db
def test_another_devices_capture_answers_404_like_an_unknown_one(device_client, settings):
    theirs = CaptureFactory()

    response = post_recording(device_client, theirs.uuid)
    unknown = post_recording(device_client, uuid.uuid4())

    assert_refused(response, None, status=404)
    assert_refused(unknown, None, status=404)
    assert response.json() == unknown.json()
    assert Recording.objects.count() == 0
    assert recording_files(settings) == []


@pytest.mark.django_db
def test_a_path_that_is_not_a_uuid_is_not_found(device_client):
    assert device_client.post("/api/v1/agent/captures/not-a-uuid/recording", {}, format="multipart").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [b"just text, not a video", b"\x00\x00\x00\x18ftypqt  " + b"\x00" * 64, b"RIFF\x00\x00\x00\x00AVI LIST", b""],
    ids=["text", "quicktime-brand", "avi", "empty"],
)
def test_a_recording_that_is_not_an_mp4_is_refused(device_client, own_capture, settings, data):
    response = post_recording(device_client, own_capture.uuid, recording=data)

    assert_refused(response, "recording")
    assert Recording.objects.count() == 0
    assert recording_files(settings) == []


@pytest.mark.django_db
def test_a_missing_recording_is_refused(device_client, own_capture):
    assert_refused(post_recording(device_client, own_capture.uuid, recording=None), "recording")


@pytest.mark.django_db
def test_a_recording_over_its_size_limit_is_refused(device_client, own_capture, settings):
    settings.SAFEGUARD_RECORDING_MAX_BYTES = len(MP4) - 1

    body = assert_refused(post_recording(device_client, own_capture.uuid), "recording")

    assert str(len(MP4) - 1) in body["fields"]["recording"][0]
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_a_body_over_the_size_limit_is_refused_with_413(device_client, own_capture, settings):
    settings.SAFEGUARD_BODY_LIMITS = {**settings.SAFEGUARD_BODY_LIMITS, "/api/v1/agent/captures": 5_000}

    response = post_recording(device_client, own_capture.uuid)

    assert_refused(response, "body", status=413)
    assert Recording.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("started_at", (timezone.now() + timedelta(days=1)).isoformat()),
        ("started_at", (timezone.now() - timedelta(minutes=1)).replace(tzinfo=None).isoformat()),
        ("started_at", "soon"),
        ("duration_seconds", "-1"),
        ("duration_seconds", "86400"),
        ("duration_seconds", "thirty"),
    ],
    ids=["future", "naive", "not-a-time", "negative", "a-day", "not-a-number"],
)
def test_invalid_fields_are_named(device_client, own_capture, field, value):
    response = post_recording(device_client, own_capture.uuid, **{field: value})

    assert_refused(response, field)
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_no_credentials_answer_401(client, own_capture):
    response = client.post(url(own_capture.uuid), {"recording": SimpleUploadedFile("r.mp4", MP4, "video/mp4")})

    assert response.status_code == 401
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_a_forged_token_answers_401(own_capture):
    response = post_recording(device_api_client("x" * 43), own_capture.uuid)

    assert response.status_code == 401
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_a_revoked_device_answers_401(device_client, own_capture):
    device_revoke(device=device_client.device)

    response = post_recording(device_client, own_capture.uuid)

    assert response.status_code == 401
    assert Recording.objects.count() == 0


@pytest.mark.django_db
def test_no_recording_file_is_left_when_the_insert_fails(settings):
    device, _ = enrolled_device()
    capture = CaptureFactory(device=device)

    def insert_twice(execute, sql, params, many, context):
        # A copy of the row lands just before the real insert, which then fails on the unique capture.
        if sql.startswith('INSERT INTO "captures_recording"'):
            execute(sql, params, many, context)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(insert_twice), pytest.raises(IntegrityError):
        recording_attach(device=device, capture_uuid=capture.uuid, upload=ContentFile(MP4, name="r.mp4"))

    assert Recording.objects.count() == 0
    assert recording_files(settings) == []
