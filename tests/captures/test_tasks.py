"""The screenshot preview: the service, its task, and the task on a real Celery worker."""

import io
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from safeguard.captures import tasks
from safeguard.captures.models import Capture
from safeguard.captures.services import PREVIEW_WIDTH, capture_make_preview
from safeguard.celery import app as celery_app
from tests.conftest import device_api_client
from tests.factories import CaptureFactory, KeywordFactory, enrolled_device


def image_file(size: tuple[int, int], *, mode: str = "RGB", fmt: str = "PNG", colour="teal") -> ContentFile:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return ContentFile(buffer.getvalue(), name=f"shot.{fmt.lower()}")


def preview_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "screenshots"
    return sorted(root.rglob("*-preview.webp")) if root.exists() else []


def open_preview(capture: Capture) -> Image.Image:
    with capture.screenshot_preview.open("rb") as stored:
        image = Image.open(io.BytesIO(stored.read()))
        image.load()
    return image


@pytest.mark.django_db
def test_the_preview_is_a_480_px_wide_webp_of_the_screenshot():
    capture = CaptureFactory(screenshot=image_file((1920, 1080)))

    assert capture_make_preview(capture_id=capture.pk) is True

    capture.refresh_from_db()
    assert capture.screenshot_preview.name == f"screenshots/{capture.occurred_at:%Y/%m/%d}/{capture.uuid}-preview.webp"
    preview = open_preview(capture)
    assert preview.format == "WEBP"
    assert preview.size == (PREVIEW_WIDTH, 270)
    red, green, blue = preview.getpixel((240, 135))[:3]
    assert abs(red - 0) < 12 and abs(green - 128) < 12 and abs(blue - 128) < 12  # still teal


@pytest.mark.django_db
def test_a_screenshot_narrower_than_the_preview_is_not_enlarged():
    capture = CaptureFactory(screenshot=image_file((320, 200)))

    capture_make_preview(capture_id=capture.pk)

    capture.refresh_from_db()
    assert open_preview(capture).size == (320, 200)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "fmt", "colour"), [("RGBA", "PNG", (0, 0, 255, 128)), ("P", "PNG", 3), ("L", "JPEG", 90)]
)
def test_screenshots_of_any_colour_mode_get_a_preview(mode, fmt, colour):
    capture = CaptureFactory(screenshot=image_file((800, 600), mode=mode, fmt=fmt, colour=colour))

    assert capture_make_preview(capture_id=capture.pk) is True

    capture.refresh_from_db()
    assert open_preview(capture).size == (480, 360)


@pytest.mark.django_db
def test_making_the_preview_twice_does_nothing_the_second_time(settings):
    capture = CaptureFactory(screenshot=image_file((1024, 768)))
    capture_make_preview(capture_id=capture.pk)
    capture.refresh_from_db()
    first_name = capture.screenshot_preview.name

    assert capture_make_preview(capture_id=capture.pk) is False

    capture.refresh_from_db()
    assert capture.screenshot_preview.name == first_name
    assert preview_files(settings) == [Path(settings.MEDIA_ROOT) / first_name]


@pytest.mark.django_db
def test_a_preview_made_meanwhile_by_another_run_is_kept_and_ours_removed(settings):
    capture = CaptureFactory(screenshot=image_file((1024, 768)))

    def another_run_wins(execute, sql, params, many, context):
        # Just before our conditional update, another run's preview lands in the row.
        if sql.startswith('UPDATE "captures_capture" SET "screenshot_preview"'):
            execute(
                'UPDATE "captures_capture" SET "screenshot_preview" = %s WHERE "id" = %s',
                ["screenshots/won-preview.webp", capture.pk],
                False,
                context,
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_run_wins):
        assert capture_make_preview(capture_id=capture.pk) is False

    capture.refresh_from_db()
    assert capture.screenshot_preview.name == "screenshots/won-preview.webp"
    assert preview_files(settings) == []


@pytest.mark.django_db
def test_an_unknown_or_screenshotless_capture_is_left_alone(settings):
    without = CaptureFactory(screenshot="")

    assert capture_make_preview(capture_id=without.pk) is False
    assert capture_make_preview(capture_id=without.pk + 1000) is False
    without.refresh_from_db()
    assert not without.screenshot_preview
    assert preview_files(settings) == []


@pytest.mark.django_db
def test_the_task_calls_the_service():
    capture = CaptureFactory(screenshot=image_file((960, 540)))

    result = tasks.capture_make_preview.delay(capture.pk)

    assert result.get() is True
    capture.refresh_from_db()
    assert open_preview(capture).size == (480, 270)


def test_the_task_retries_storage_and_database_errors_with_backoff_but_not_undecodable_images():
    task = tasks.capture_make_preview
    assert OSError in task.autoretry_for and DatabaseError in task.autoretry_for
    assert UnidentifiedImageError in task.dont_autoretry_for
    assert task.retry_backoff is True and task.max_retries == 5


@pytest.mark.django_db
def test_an_undecodable_screenshot_fails_the_task_without_a_preview(settings):
    capture = CaptureFactory(screenshot=ContentFile(b"not an image at all", name="shot.png"))

    with pytest.raises(Exception, match="cannot identify image"):
        tasks.capture_make_preview.delay(capture.pk)

    capture.refresh_from_db()
    assert not capture.screenshot_preview
    assert preview_files(settings) == []


# --- a real worker ------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_real_worker_makes_the_preview_of_an_ingested_capture(celery_worker, settings):
    assert celery_app.conf.task_always_eager is False
    KeywordFactory(text="blade")
    _, token = enrolled_device()
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), "purple").save(buffer, "PNG")
    capture_id = str(uuid.uuid4())
    metadata = {
        "id": capture_id,
        "occurred_at": (timezone.now() - timedelta(seconds=5)).isoformat(),
        "user": "SCHOOL\\jsmith",
        "keyword": "blade",
        "severity": "high",
    }

    response = device_api_client(token).post(
        "/api/v1/agent/captures",
        {"metadata": json.dumps(metadata), "screenshot": SimpleUploadedFile("s.png", buffer.getvalue(), "image/png")},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    deadline = time.monotonic() + 30
    capture = Capture.objects.get(uuid=capture_id)
    while not capture.screenshot_preview and time.monotonic() < deadline:
        time.sleep(0.2)
        capture.refresh_from_db()
    assert capture.screenshot_preview, f"no preview after 30 s; worker log:\n{celery_worker.log()[-3000:]}"
    assert (Path(settings.MEDIA_ROOT) / capture.screenshot_preview.name).is_file()
    preview = open_preview(capture)
    assert (preview.format, preview.size) == ("WEBP", (480, 270))
    assert "capture_make_preview[" in celery_worker.log()
