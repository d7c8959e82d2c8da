"""Hostile input from the pupil's side: what an agent (or someone holding a device token) can send.

Everything an agent reports is text a pupil controls: window titles, URLs, typed context, Confide
messages, requests for help, even the computer's hostname and the account's display name. It is
stored as sent and must be shown escaped in the console, in emails and in PDFs (stored XSS).
Uploaded files are checked for what they are, not what they claim to be, and stored under names
the server makes.

Already covered elsewhere (and listed in docs/SECURITY.md), so not repeated here:
- 413 over the body limit: one test per endpoint (tests/captures/test_api_captures.py,
  test_api_recording.py, tests/groups/test_api_heartbeat.py, test_api_thumbnail.py,
  test_api_enrol.py, tests/logs/test_api_events.py, tests/confide/test_api_*.py).
- A decompression-bomb screenshot, screenshots and thumbnails that are not images, a recording
  that is not an MP4, `../` in a screenshot's or thumbnail's filename
  (tests/captures/test_api_captures.py, test_api_recording.py, tests/groups/test_api_thumbnail.py).
- A capture's context, window title, application, URL, keyword and note escaped on the capture
  pages and timeline (tests/console/test_captures_views.py) and in its PDF (tests/captures/test_pdf.py).
- Log-viewer filters that are not what they claim (tests/console/test_logs_views.py).
"""

import io
import struct
import uuid
import zlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import Recording
from safeguard.groups.models import Device
from safeguard.logs.models import EventType
from safeguard.policies.alerts import capture_email
from tests.conftest import device_api_client
from tests.factories import (
    ActivityEventFactory,
    AssistanceRequestFactory,
    CaptureFactory,
    ConfideNoteFactory,
    ConfideReportFactory,
    DeviceFactory,
    PersonFactory,
    enrolled_device,
)

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
ESCAPED_ALT = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#x27;alert(2)&#x27;&gt;"


def staff_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_escaped(page: str, where: str) -> None:
    assert HOSTILE not in page, f"raw markup in {where}"
    assert "<script>alert(1)" not in page and 'onerror="alert(2)"' not in page, where
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, f"the text itself is missing from {where}"


# --- stored XSS in the console ------------------------------------------------------------------


@pytest.fixture
def hostile_world(cast):
    """A pupil and computer whose every agent-reported string is markup."""
    pupil = PersonFactory(username=f"SCHOOL\\{HOSTILE}", display_name=f"Pupil {HOSTILE}")
    cast.year9.memberships.create(person=pupil)
    device = DeviceFactory(hostname=f"PC-{HOSTILE}", current_person=pupil, os=HOSTILE, agent_version=HOSTILE)
    now = timezone.now()
    for offset, (event_type, data) in enumerate(
        [
            (EventType.WINDOW, {"title": f"Chat {HOSTILE}", "application": f"{HOSTILE}.exe"}),
            (EventType.WEBSITE, {"url": f"https://example.test/?q={HOSTILE}", "title": HOSTILE, "browser": HOSTILE}),
            (EventType.PRINT, {"document": HOSTILE, "printer": HOSTILE, "pages": 1}),
            (EventType.FILE_DELETED, {"path": f"C:\\Users\\{HOSTILE}.txt"}),
        ]
    ):
        ActivityEventFactory(
            person=pupil, device=device, type=event_type, data=data, occurred_at=now - timedelta(minutes=offset + 1)
        )
    capture = CaptureFactory(person=pupil, device=device, context=f"typed {HOSTILE}", window_title=HOSTILE)
    report = ConfideReportFactory(person=pupil, device=device, message=f"Help {HOSTILE}")
    ConfideNoteFactory(report=report, text=f"Note {HOSTILE}")
    anonymous = ConfideReportFactory(is_anonymous=True, person=None, device=None, message=f"Anon {HOSTILE}")
    AssistanceRequestFactory(person=pupil, device=device, message=f"Please {HOSTILE}")
    return {"pupil": pupil, "device": device, "capture": capture, "report": report, "anonymous": anonymous}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "page",
    [
        "/console/",
        "/console/thumbnails/",
        "/console/thumbnails/grid",
        "device",
        "/console/logs/?tab=timeline",
        "person timeline",
        "/console/captures/",
        "capture",
        "/console/confide/",
        "confide report",
        "anonymous confide report",
        "/console/assistance/",
        "/console/insight/",
    ],
)
def test_agent_reported_text_is_escaped_in_the_console(cast, hostile_world, page):
    urls = {
        "device": f"/console/devices/{hostile_world['device'].uuid}/",
        "person timeline": f"/console/logs/?tab=timeline&person={hostile_world['pupil'].uuid}",
        "capture": f"/console/captures/{hostile_world['capture'].uuid}/",
        "confide report": f"/console/confide/{hostile_world['report'].uuid}/",
        "anonymous confide report": f"/console/confide/{hostile_world['anonymous'].uuid}/",
    }
    response = staff_client(cast.lead).get(urls.get(page, page))
    assert response.status_code == 200
    assert_escaped(response.content.decode(), page)


def test_agent_reported_text_is_escaped_in_the_alert_email(cast, hostile_world):
    message = capture_email(capture=hostile_world["capture"], to="lead@school.test", kind="alert", key=uuid.uuid4())
    html = (
        message.alternatives[0].content if hasattr(message.alternatives[0], "content") else message.alternatives[0][0]
    )
    assert_escaped(html, "the alert email's HTML")
    # The plain-text part is plain text: no markup is interpreted there, so it reads as sent.
    assert "\r" not in message.subject and "\n" not in message.subject


@pytest.mark.django_db
def test_a_hostname_with_a_newline_cannot_add_email_headers(cast):
    device = DeviceFactory(hostname="PC01\r\nBcc: everyone@example.test")
    capture = CaptureFactory(person=cast.pupil9, device=device, keyword_text="knife\r\nBcc: x@example.test")
    message = capture_email(capture=capture, to="lead@school.test", kind="alert", key=uuid.uuid4())
    raw = message.message().as_bytes()
    headers = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in headers


@pytest.mark.django_db
def test_a_hostname_with_a_newline_still_gets_its_offline_email_sent():
    from safeguard.groups.offline import devices_offline_email
    from safeguard.policies.models import DeviceOutage

    device = DeviceFactory(hostname="PC02\r\nBcc: everyone@example.test")
    now = timezone.now()
    outage = DeviceOutage.objects.create(device=device, started_at=now - timedelta(hours=1), detected_at=now)
    message = devices_offline_email(outages=[outage], addresses=["it@school.test"], minutes=30, token="t")
    headers = message.message().as_bytes().split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in headers


def test_agent_reported_text_is_escaped_in_the_capture_pdf(cast, hostile_world):
    """The PDF is a rendering of HTML: markup in the text must come out as the text, not as markup."""
    from pypdf import PdfReader

    response = staff_client(cast.lead).get(f"/console/captures/{hostile_world['capture'].uuid}/pdf")
    assert response.status_code == 200
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "<script>alert(1)</script>" in text.replace("\n", "")  # shown as text, so it was escaped


# --- uploads that are not what they claim ---------------------------------------------------------


def png_claiming_size(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width × height pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


@pytest.mark.django_db
def test_a_decompression_bomb_thumbnail_is_refused(device_client):
    bomb = png_claiming_size(100_000, 100_000)
    response = device_client.post(
        "/api/v1/agent/thumbnail",
        {"image": SimpleUploadedFile("live.png", bomb, content_type="image/png")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "too large" in response.json()["fields"]["image"][0]
    assert not Device.objects.get(pk=device_client.device.pk).thumbnail


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        b"<html><script>alert(1)</script></html>",  # HTML named .png
        b"\x89PNG\r\n\x1a\n<script>alert(1)</script>",  # PNG signature, then nothing of a PNG
        b"GIF89a<script>alert(1)</script>",  # another format's signature
    ],
    ids=["html", "png-signature-only", "gif-signature"],
)
def test_a_thumbnail_that_only_claims_to_be_a_png_is_refused(device_client, data):
    response = device_client.post(
        "/api/v1/agent/thumbnail",
        {"image": SimpleUploadedFile("live.png", data, content_type="image/png")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "image" in response.json()["fields"]


@pytest.fixture
def own_capture(cast):
    return CaptureFactory(person=cast.pupil9, device=cast.device9)


@pytest.mark.django_db
def test_an_mp4_polyglot_is_stored_under_the_servers_name_and_served_only_as_video(cast, own_capture, settings):
    """A file that starts like an MP4 and carries HTML passes the MP4 check; it must never be
    served as anything a browser would render: video/mp4, nosniff, and a name the server chose."""
    polyglot = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00<html><script>alert(1)</script></html>"
    client = device_api_client(cast.device_token)
    response = client.post(
        f"/api/v1/agent/captures/{own_capture.uuid}/recording",
        {"recording": SimpleUploadedFile("../../../../tmp/evil.html", polyglot, content_type="text/html")},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    recording = Recording.objects.get(capture=own_capture)
    assert ".." not in recording.file.name and "evil" not in recording.file.name
    assert recording.file.name.endswith(".mp4")
    assert (settings.MEDIA_ROOT / recording.file.name).resolve().is_relative_to(settings.MEDIA_ROOT.resolve())

    video = staff_client(cast.lead).get(f"/console/recordings/{recording.uuid}/video")
    assert video.status_code == 200
    assert video["Content-Type"] == "video/mp4"
    assert video["X-Content-Type-Options"] == "nosniff"
    assert "inline; filename" not in video.get("Content-Disposition", "") or ".html" not in video["Content-Disposition"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["../../../etc/passwd", "..\\..\\windows\\win.ini", "/absolute/path.png", "nul\x00.png", "a" * 300 + ".png"]
)
def test_a_screenshot_filename_never_chooses_where_it_is_stored(device_client, settings, name):
    from tests.captures.test_api_captures import metadata, post_capture
    from tests.factories import KeywordFactory, KeywordPolicyFactory

    KeywordFactory(policy=KeywordPolicyFactory(applies_to_everyone=True), text="blade")
    response = post_capture(device_client, metadata(), screenshot=_png(), filename=name)
    assert response.status_code == 201, response.content
    stored = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        assert path.resolve().is_relative_to(settings.MEDIA_ROOT.resolve())
        assert "passwd" not in path.name and "win.ini" not in path.name and "\x00" not in str(path)


def _png() -> bytes:
    from tests.factories import png_bytes

    return png_bytes()


# --- parameters that are not what they claim ------------------------------------------------------

JUNK = {
    "group": ["abc", "-1", "99999999999999999999", "1 OR 1=1", HOSTILE],
    "person": ["not-a-uuid", "../../etc/passwd", HOSTILE, str(uuid.uuid4())],
    "device": ["0x10", HOSTILE],
    "start": ["2024-13-45", "yesterday", HOSTILE],
    "end": ["99999-01-01", "\x00"],
    "page": ["-1", "0", "9" * 30, "abc"],
    "after": ["%00", "eyJ4IjoxfQ", HOSTILE],
    "status": ["nope", HOSTILE],
    "severity": ["ultra", HOSTILE],
    "order": ["sideways", HOSTILE],
    "tab": ["../admin", HOSTILE],
    "q": ["' OR 1=1 --", HOSTILE],
    "chart": ["nothing"],
}
LIST_PAGES = [
    "/console/",
    "/console/captures/",
    "/console/logs/",
    "/console/exports/",
    "/console/insight/",
    "/console/thumbnails/",
    "/console/thumbnails/grid",
    "/console/recordings/",
    "/console/confide/",
    "/console/assistance/",
    "/console/alerts/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("page", LIST_PAGES)
@pytest.mark.parametrize("name", sorted(JUNK))
def test_junk_parameters_never_cause_a_500_or_come_back_as_markup(cast, page, name):
    client = staff_client(cast.lead)
    for value in JUNK[name]:
        response = client.get(page, {name: value})
        assert response.status_code in (200, 404), (page, name, value, response.status_code)
        if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
            assert HOSTILE not in response.content.decode(), (page, name)


@pytest.mark.django_db
def test_an_enrolled_devices_hostile_heartbeat_is_stored_as_text(cast):
    """The heartbeat names the logged-in account: markup there becomes a display name, escaped."""
    device, token = enrolled_device(hostname="HB-PC01")
    cast.year9.memberships.create(device=None, person=PersonFactory(username=f"SCHOOL\\{HOSTILE}"))
    response = device_api_client(token).post(
        "/api/v1/agent/heartbeat",
        {"user": f"SCHOOL\\{HOSTILE}", "agent_version": HOSTILE, "os": HOSTILE},
        format="json",
    )
    assert response.status_code in (200, 400)
    page = staff_client(cast.lead).get("/console/").content.decode()
    assert HOSTILE not in page
