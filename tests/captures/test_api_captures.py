"""POST /api/v1/agent/captures: a keyword match with its screenshot, stored once and never half-written."""

import io
import json
import os
import struct
import threading
import uuid
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection
from django.utils import timezone
from PIL import Image

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.captures.services import capture_ingest
from safeguard.groups.models import Device, Person
from safeguard.groups.services import device_revoke
from tests.conftest import device_api_client
from tests.factories import CaptureFactory, KeywordFactory, KeywordPolicyFactory, PersonFactory, enrolled_device

URL = "/api/v1/agent/captures"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), colour: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width × height pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def metadata(keyword_text: str = "blade", **overrides) -> dict:
    body = {
        "id": str(uuid.uuid4()),
        "occurred_at": (timezone.now() - timedelta(seconds=20)).isoformat(),
        "user": "SCHOOL\\jsmith",
        "keyword": keyword_text,
        "severity": "high",
        "context": f"i want to get a {keyword_text} and",
        "application": "chrome.exe",
        "window_title": "Search - Google Chrome",
        "url": "https://www.google.com/search?q=x",
    }
    body.update(overrides)
    return body


def post_capture(client, meta=None, *, screenshot: bytes | None = None, filename="shot.png", content_type="image/png"):
    body: dict = {}
    if meta is not None:
        body["metadata"] = meta if isinstance(meta, str) else json.dumps(meta)
    if screenshot is not None:
        body["screenshot"] = SimpleUploadedFile(filename, screenshot, content_type=content_type)
    return client.post(URL, body, format="multipart")


def stored_files(settings, folder: str = "screenshots") -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / folder
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def assert_refused(response, field: str, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "fields"}
    assert field in body["fields"], body
    return body


@pytest.fixture
def blade(db):
    """An enabled keyword 'blade' (high) in a self-harm policy."""
    return KeywordFactory(text="blade", severity="high", policy=KeywordPolicyFactory(name="Self-harm"))


# --- success ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_a_capture_is_stored_with_its_screenshot(device_client, blade, settings, fmt, content_type, extension):
    meta = metadata(policy=str(blade.policy.uuid))
    shot = image_bytes(fmt)
    Device.objects.filter(pk=device_client.device.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    before = timezone.now()

    response = post_capture(device_client, meta, screenshot=shot, filename="anything.bin", content_type=content_type)

    assert response.status_code == 201, response.content
    assert response.json() == {"id": meta["id"], "status": "new"}
    capture = Capture.objects.select_related("person").get(uuid=meta["id"])
    assert capture.device == device_client.device
    assert capture.person.username == "SCHOOL\\jsmith"
    assert capture.policy == blade.policy
    assert capture.keyword == blade
    assert capture.keyword_text == "blade"
    assert capture.severity == "high"
    assert capture.status == CaptureStatus.NEW
    assert capture.context == meta["context"]
    assert (capture.application, capture.window_title, capture.url) == (
        meta["application"],
        meta["window_title"],
        meta["url"],
    )
    assert capture.occurred_at.isoformat() == meta["occurred_at"]
    # Stored under a name made from our own identifiers, with the detected format's extension.
    assert capture.screenshot.name.startswith("screenshots/")
    assert capture.screenshot.name.endswith(f"{capture.uuid}.{extension}")
    with capture.screenshot.open("rb") as stored:
        assert stored.read() == shot
    assert Device.objects.get(pk=device_client.device.pk).last_seen_at >= before


@pytest.mark.django_db
def test_the_client_file_name_never_reaches_storage(device_client, blade, settings):
    response = post_capture(device_client, metadata(), screenshot=image_bytes(), filename="../../../etc/cron.d/x.png")

    assert response.status_code == 201
    capture = Capture.objects.get()
    assert ".." not in capture.screenshot.name and "cron" not in capture.screenshot.name
    assert stored_files(settings) == [Path(settings.MEDIA_ROOT) / capture.screenshot.name]


@pytest.mark.django_db
def test_optional_metadata_may_be_left_out(device_client, blade):
    meta = metadata()
    for optional in ("context", "application", "window_title", "url"):
        del meta[optional]

    response = post_capture(device_client, meta, screenshot=image_bytes())

    assert response.status_code == 201, response.content
    capture = Capture.objects.get()
    assert (capture.context, capture.application, capture.window_title, capture.url) == ("", "", "", "")


@pytest.mark.django_db
def test_the_screenshot_preview_is_made_after_the_commit(device_client, blade, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_capture(device_client, metadata(), screenshot=image_bytes(size=(1280, 800)))

    assert response.status_code == 201
    assert len(callbacks) == 1  # the follow-ups (capture_dispatch_followups), the preview among them
    capture = Capture.objects.get()
    with capture.screenshot_preview.open("rb") as preview, Image.open(preview) as image:
        assert (image.format, image.size) == ("WEBP", (480, 300))


@pytest.mark.django_db
def test_a_resend_answers_200_and_stores_nothing_new(device_client, blade, settings):
    meta = metadata()
    first = post_capture(device_client, meta, screenshot=image_bytes(colour="navy"))
    stored = Capture.objects.get()
    with stored.screenshot.open("rb") as original:
        original_bytes = original.read()

    again = post_capture(device_client, meta, screenshot=image_bytes("JPEG", colour="red"), content_type="image/jpeg")

    assert first.status_code == 201
    assert again.status_code == 200, again.content
    assert again.json() == {"id": meta["id"], "status": "new"}
    assert Capture.objects.count() == 1
    assert stored_files(settings) == [Path(settings.MEDIA_ROOT) / stored.screenshot.name]
    stored.refresh_from_db()
    with stored.screenshot.open("rb") as current:
        assert current.read() == original_bytes


@pytest.mark.django_db
def test_a_resend_reports_the_current_status(device_client, blade):
    meta = metadata()
    post_capture(device_client, meta, screenshot=image_bytes())
    Capture.objects.filter(uuid=meta["id"]).update(status=CaptureStatus.ESCALATED)

    again = post_capture(device_client, meta, screenshot=image_bytes())

    assert again.json() == {"id": meta["id"], "status": "escalated"}


@pytest.mark.django_db
def test_the_user_is_created_on_first_sight_and_matched_case_insensitively_after(device_client, blade):
    post_capture(device_client, metadata(user="SCHOOL\\NewPupil"), screenshot=image_bytes())
    post_capture(device_client, metadata(user="school\\newpupil"), screenshot=image_bytes())

    person = Person.objects.get(username__iexact="school\\newpupil")
    assert Capture.objects.filter(person=person).count() == 2


# --- which policy ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_policy_named_by_the_agent_is_used(device_client):
    severe = KeywordFactory(text="knife", severity="severe", policy=KeywordPolicyFactory(name="Weapons"))
    low = KeywordFactory(text="Knife", severity="low", policy=KeywordPolicyFactory(name="Kitchen"))

    response = post_capture(
        device_client, metadata("knife", severity="low", policy=str(low.policy.uuid)), screenshot=image_bytes()
    )

    assert response.status_code == 201, response.content
    capture = Capture.objects.get()
    assert (capture.policy, capture.keyword, capture.severity) == (low.policy, low, "low")
    assert capture.policy != severe.policy


@pytest.mark.django_db
def test_a_named_policy_is_kept_even_when_its_keyword_has_since_gone(device_client):
    policy = KeywordPolicyFactory(name="Bullying")

    response = post_capture(device_client, metadata("loser", policy=str(policy.uuid)), screenshot=image_bytes())

    assert response.status_code == 201
    capture = Capture.objects.get()
    assert (capture.policy, capture.keyword, capture.keyword_text) == (policy, None, "loser")


@pytest.mark.django_db
@pytest.mark.parametrize("policy_field", ["absent", "null"])
def test_without_a_policy_the_most_severe_enabled_keyword_decides(device_client, policy_field):
    KeywordFactory(text="knife", severity="medium", policy=KeywordPolicyFactory(name="Kitchen"))
    severe = KeywordFactory(text="KNIFE", severity="severe", policy=KeywordPolicyFactory(name="Weapons"))
    KeywordFactory(text="knife", severity="low", policy=KeywordPolicyFactory(name="Tools"))
    meta = metadata("Knife")
    if policy_field == "null":
        meta["policy"] = None

    response = post_capture(device_client, meta, screenshot=image_bytes())

    assert response.status_code == 201, response.content
    capture = Capture.objects.get()
    assert (capture.policy, capture.keyword) == (severe.policy, severe)


@pytest.mark.django_db
def test_a_disabled_keyword_is_not_used_to_find_the_policy(device_client):
    KeywordFactory(text="knife", severity="severe", enabled=False, policy=KeywordPolicyFactory(name="Weapons"))
    medium = KeywordFactory(text="knife", severity="medium", policy=KeywordPolicyFactory(name="Kitchen"))

    post_capture(device_client, metadata("knife"), screenshot=image_bytes())

    assert Capture.objects.get().policy == medium.policy


@pytest.mark.django_db
def test_a_keyword_no_policy_has_is_refused(device_client, blade, settings):
    KeywordFactory(text="knife", enabled=False)

    response = post_capture(device_client, metadata("knife"), screenshot=image_bytes())

    assert_refused(response, "metadata.keyword")
    assert Capture.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.django_db
def test_an_unknown_policy_is_refused(device_client, blade):
    response = post_capture(device_client, metadata(policy=str(uuid.uuid4())), screenshot=image_bytes())

    assert_refused(response, "metadata.policy")
    assert Capture.objects.count() == 0


# --- bad screenshots ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"this is just some text, not a picture", "notes.txt", "text/plain"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "shot.png", "image/png"),  # claims PNG, is not
        (image_bytes("PNG")[:-40], "shot.png", "image/png"),  # a PNG cut short
        (image_bytes("GIF"), "shot.gif", "image/gif"),  # decodes, but not an allowed format
        (b"", "empty.png", "image/png"),
    ],
    ids=["text", "claims-png", "truncated-png", "gif", "empty"],
)
def test_a_screenshot_that_is_not_a_png_jpeg_or_webp_is_refused(
    device_client, blade, settings, data, filename, content_type
):
    response = post_capture(device_client, metadata(), screenshot=data, filename=filename, content_type=content_type)

    assert_refused(response, "screenshot")
    assert Capture.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.django_db
def test_a_decompression_bomb_is_refused(device_client, blade, settings):
    bomb = png_claiming_size(100_000, 100_000)
    assert len(bomb) < 200

    response = post_capture(device_client, metadata(), screenshot=bomb)

    body = assert_refused(response, "screenshot")
    assert "too large" in body["fields"]["screenshot"][0]
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_a_screenshot_over_its_size_limit_is_refused(device_client, blade, settings):
    settings.SAFEGUARD_SCREENSHOT_MAX_BYTES = 10_000
    buffer = io.BytesIO()
    Image.frombytes("RGB", (100, 100), os.urandom(30_000)).save(buffer, "PNG")  # noise: does not compress
    big = buffer.getvalue()
    assert len(big) > 10_000

    response = post_capture(device_client, metadata(), screenshot=big)

    body = assert_refused(response, "screenshot")
    assert "10000" in body["fields"]["screenshot"][0]
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_a_missing_screenshot_is_refused(device_client, blade):
    response = post_capture(device_client, metadata())

    assert_refused(response, "screenshot")
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_a_body_over_the_size_limit_is_refused_with_413(device_client, blade, settings):
    settings.SAFEGUARD_BODY_LIMITS = {**settings.SAFEGUARD_BODY_LIMITS, "/api/v1/agent/captures": 50_000}

    response = post_capture(device_client, metadata(), screenshot=image_bytes() + b"\0" * 60_000)

    assert_refused(response, "body", status=413)
    assert Capture.objects.count() == 0


# --- bad metadata -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    ['{"id": "broken', "", "[1, 2, 3]", '"just a string"', "null"],
    ids=["truncated", "empty", "array", "string", "null"],
)
def test_metadata_that_is_not_a_json_object_is_refused(device_client, blade, raw):
    response = post_capture(device_client, raw, screenshot=image_bytes())

    assert_refused(response, "metadata")
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_missing_metadata_is_refused(device_client, blade):
    assert_refused(post_capture(device_client, None, screenshot=image_bytes()), "metadata")


@pytest.mark.django_db
def test_metadata_sent_as_a_file_is_refused(device_client, blade):
    response = device_client.post(
        URL,
        {
            "metadata": SimpleUploadedFile("meta.json", json.dumps(metadata()).encode(), "application/json"),
            "screenshot": SimpleUploadedFile("shot.png", image_bytes(), "image/png"),
        },
        format="multipart",
    )

    assert_refused(response, "metadata")


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["id", "occurred_at", "user", "keyword", "severity"])
def test_a_missing_metadata_field_is_named(device_client, blade, field):
    meta = metadata()
    del meta[field]

    response = post_capture(device_client, meta, screenshot=image_bytes())

    assert_refused(response, f"metadata.{field}")
    assert Capture.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("severity", "catastrophic"),
        ("context", "x" * 401),
        ("keyword", "k" * 201),
        ("window_title", "w" * 1025),
        ("url", "u" * 2049),
        ("user", "SCHOOL\\bad\nname"),
        ("policy", "not-a-uuid"),
        ("occurred_at", (timezone.now() + timedelta(days=1)).isoformat()),
        ("occurred_at", (timezone.now() - timedelta(minutes=1)).replace(tzinfo=None).isoformat()),
    ],
    ids=["id", "severity", "context", "keyword", "window_title", "url", "user", "policy", "future", "naive"],
)
def test_an_invalid_metadata_field_is_named(device_client, blade, settings, field, value):
    response = post_capture(device_client, metadata(**{field: value}), screenshot=image_bytes())

    assert_refused(response, f"metadata.{field}")
    assert Capture.objects.count() == 0
    assert stored_files(settings) == []


# --- authentication and other devices -----------------------------------------------------------


@pytest.mark.django_db
def test_no_credentials_answer_401(client, blade):
    response = client.post(
        URL,
        {"metadata": json.dumps(metadata()), "screenshot": SimpleUploadedFile("s.png", image_bytes(), "image/png")},
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_a_forged_token_answers_401(blade):
    enrolled_device()

    response = post_capture(device_api_client("f" * 43), metadata(), screenshot=image_bytes())

    assert response.status_code == 401
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_a_revoked_device_answers_401(device_client, blade):
    device_revoke(device=device_client.device)

    response = post_capture(device_client, metadata(), screenshot=image_bytes())

    assert response.status_code == 401
    assert Capture.objects.count() == 0


@pytest.mark.django_db
def test_another_devices_capture_id_is_refused_without_saying_whose(device_client, blade, settings):
    theirs = CaptureFactory(keyword=blade, context="private words of another pupil")
    files_before = stored_files(settings)

    response = post_capture(device_client, metadata(id=str(theirs.uuid)), screenshot=image_bytes())

    body = assert_refused(response, "metadata.id", status=409)
    text = json.dumps(body)
    for secret in (theirs.device.hostname, theirs.person.username, "private words", str(theirs.device.uuid)):
        assert secret not in text
    assert Capture.objects.count() == 1
    theirs.refresh_from_db()
    assert theirs.device != device_client.device
    assert stored_files(settings) == files_before


# --- nothing half-written -----------------------------------------------------------------------


def _service_metadata(**overrides) -> dict:
    return {
        "id": uuid.uuid4(),
        "occurred_at": timezone.now() - timedelta(seconds=5),
        "user": "SCHOOL\\jsmith",
        "keyword": "blade",
        "severity": "high",
        "context": "",
        "application": "",
        "window_title": "",
        "url": "",
        "policy": None,
        **overrides,
    }


@pytest.mark.django_db
def test_no_screenshot_file_is_left_when_the_insert_fails(blade, settings):
    device, _ = enrolled_device()

    def insert_twice(execute, sql, params, many, context):
        # The row is inserted once more just before the real insert, so the real one fails on the
        # unique uuid: a genuine IntegrityError from the database, after the file was written.
        if sql.startswith('INSERT INTO "captures_capture"'):
            execute(sql, params, many, context)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(insert_twice), pytest.raises(IntegrityError):
        capture_ingest(
            device=device,
            metadata=_service_metadata(),
            screenshot=ContentFile(image_bytes(), name="s.png"),
            extension="png",
        )

    assert Capture.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.django_db
def test_the_service_refuses_to_run_inside_a_callers_transaction(blade, settings):
    """A caller's later rollback could leave the file behind, so the write must be the outermost one."""
    from django.db import transaction

    device, _ = enrolled_device()

    with pytest.raises(RuntimeError), transaction.atomic():
        capture_ingest(
            device=device,
            metadata=_service_metadata(),
            screenshot=ContentFile(image_bytes(), name="s.png"),
            extension="png",
        )

    assert stored_files(settings) == []


# --- races (need a database server: a second connection commits in the middle) -----------------


def _post_from_another_connection(token: str, meta: dict, answers: list) -> None:
    def send() -> None:
        try:
            answers.append(post_capture(device_api_client(token), meta, screenshot=image_bytes(colour="red")))
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    thread.join(timeout=60)


def _race(token_of_other_sender: str, meta: dict, own_client) -> tuple:
    """Post `meta` from `own_client`; just before its INSERT, the same capture id is committed by another sender."""
    answers: list = []
    raced = False

    def commit_a_copy_first(execute, sql, params, many, context):
        nonlocal raced
        if sql.startswith('INSERT INTO "captures_capture"') and not raced:
            raced = True
            _post_from_another_connection(token_of_other_sender, meta, answers)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(commit_a_copy_first):
        response = post_capture(own_client, meta, screenshot=image_bytes(colour="navy"))
    return response, answers


@pytest.mark.integration
def test_two_copies_of_a_capture_at_once_store_one_capture_and_one_file(postgresql_transactional_db, settings):
    KeywordFactory(text="blade")
    PersonFactory(username="SCHOOL\\jsmith")
    device, token = enrolled_device()
    meta = metadata()

    response, answers = _race(token, meta, device_api_client(token))

    assert [a.status_code for a in answers] == [201]
    assert response.status_code == 200, response.content
    assert response.json() == {"id": meta["id"], "status": "new"}
    capture = Capture.objects.get()
    # The winner's screenshot and its preview (made on commit); the loser's file was removed.
    assert stored_files(settings) == sorted(
        Path(settings.MEDIA_ROOT) / name for name in (capture.screenshot.name, capture.screenshot_preview.name)
    )


@pytest.mark.integration
def test_a_racing_capture_id_of_another_device_is_refused_and_leaves_no_file(postgresql_transactional_db, settings):
    KeywordFactory(text="blade")
    PersonFactory(username="SCHOOL\\jsmith")
    _, other_token = enrolled_device()
    _, own_token = enrolled_device()
    meta = metadata()

    response, answers = _race(other_token, meta, device_api_client(own_token))

    assert [a.status_code for a in answers] == [201]
    assert_refused(response, "metadata.id", status=409)
    capture = Capture.objects.get()
    # The winner's screenshot and its preview (made on commit); the loser's file was removed.
    assert stored_files(settings) == sorted(
        Path(settings.MEDIA_ROOT) / name for name in (capture.screenshot.name, capture.screenshot_preview.name)
    )
