"""Serving protected files: streaming (with ranges) and X-Accel-Redirect, headers, audit."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.base import ContentFile
from django.http import Http404
from django.test import RequestFactory

from safeguard.core.media import parse_range, serve_protected_file
from safeguard.logs.models import AuditEntry
from tests.factories import CaptureFactory, RecordingFactory, StaffUserFactory, png_bytes

pytestmark = pytest.mark.django_db

VIDEO = bytes(range(256)) * 40  # 10,240 bytes


def get(headers: dict | None = None, user=None):
    request = RequestFactory().get("/file", headers=headers or {})
    request.user = user or AnonymousUser()
    return request


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def recording():
    return RecordingFactory(file=ContentFile(VIDEO, name="r.mp4"))


def test_streams_the_whole_file_with_private_no_store_headers():
    capture = CaptureFactory(screenshot=ContentFile(png_bytes(), name="s.png"))

    response = serve_protected_file(get(), capture.screenshot)

    assert response.status_code == 200
    assert body(response) == capture.screenshot.open("rb").read()
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Accept-Ranges"] == "bytes"
    assert int(response["Content-Length"]) == capture.screenshot.size
    assert "X-Accel-Redirect" not in response


def test_a_range_request_gets_206_and_just_those_bytes(recording):
    response = serve_protected_file(get({"Range": "bytes=100-199"}), recording.file, content_type="video/mp4")

    assert response.status_code == 206
    assert body(response) == VIDEO[100:200]
    assert response["Content-Range"] == f"bytes 100-199/{len(VIDEO)}"
    assert response["Content-Length"] == "100"
    assert response["Content-Type"] == "video/mp4"
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239), ("bytes=0-999999", 0, 10239)],
)
def test_open_ended_suffix_and_oversized_ranges(recording, header, start, end):
    response = serve_protected_file(get({"Range": header}), recording.file)

    assert response.status_code == 206
    assert body(response) == VIDEO[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(VIDEO)}"


def test_an_unsatisfiable_range_is_416(recording):
    response = serve_protected_file(get({"Range": "bytes=20000-"}), recording.file)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


def test_malformed_or_multiple_ranges_get_the_whole_file(recording):
    for header in ("bytes=a-b", "bytes=0-1,5-6", "items=0-1"):
        response = serve_protected_file(get({"Range": header}), recording.file)
        assert response.status_code == 200
        assert body(response) == VIDEO


def test_parse_range():
    assert parse_range("", 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=8-", 10) == (8, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    with pytest.raises(ValueError):
        parse_range("bytes=5-2", 10)
    with pytest.raises(ValueError):
        parse_range("bytes=-0", 10)


def test_x_accel_mode_answers_empty_with_the_internal_location(settings, recording):
    settings.SAFEGUARD_X_ACCEL_REDIRECT_PREFIX = "/protected-media/"

    response = serve_protected_file(get({"Range": "bytes=0-10"}), recording.file, content_type="video/mp4")

    assert response.status_code == 200  # nginx turns it into 206 itself
    assert response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{recording.file.name}"
    assert response["Content-Type"] == "video/mp4"
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_attachment_names_the_download(recording):
    response = serve_protected_file(get(), recording.file, filename="Capture – report.pdf", attachment=True)

    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Capture  report.pdf"')
    assert "filename*=UTF-8''Capture%20%E2%80%93%20report.pdf" in disposition


def test_audit_row_is_written_when_asked(recording):
    lead = StaffUserFactory(username="lead")

    serve_protected_file(
        get(user=lead), recording.file, audit={"action": "recording.viewed", "target": recording, "summary": "watched"}
    )

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
        lead,
        "recording.viewed",
        "recording",
        str(recording.uuid),
    )


def test_an_audit_callable_sees_the_range_and_may_decline(recording):
    lead = StaffUserFactory(username="lead")
    seen = []

    def audit(requested):
        seen.append(requested)
        return None if requested and requested[0] else {"action": "recording.viewed", "target": recording}

    serve_protected_file(get({"Range": "bytes=0-"}, user=lead), recording.file, audit=audit)
    serve_protected_file(get({"Range": "bytes=500-"}, user=lead), recording.file, audit=audit)

    assert seen == [(0, len(VIDEO) - 1), (500, len(VIDEO) - 1)]
    assert AuditEntry.objects.count() == 1


def test_no_file_or_a_missing_file_is_404():
    capture = CaptureFactory(screenshot="")
    with pytest.raises(Http404):
        serve_protected_file(get(), capture.screenshot)
    capture.screenshot.name = "screenshots/gone.png"
    with pytest.raises(Http404):
        serve_protected_file(get(), capture.screenshot)


def test_media_url_is_not_routed(client, recording):
    from django.conf import settings

    assert client.get(settings.MEDIA_URL + recording.file.name).status_code == 404
