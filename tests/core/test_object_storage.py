"""Media in S3-compatible object storage (S3_BUCKET set): stored there, served only after the access check.

The server under test is moto's standalone S3 server (`moto_server`, from `moto[server]`) run as
a separate process on a free port and spoken to over HTTP by boto3, as MinIO would be: MinIO
itself is not installable from this machine's package registries (PyPI, Debian, npm). moto does
not check credentials, so "the bucket is private" is checked as the objects' ACLs (no public
grant), not by an anonymous request being refused.

Specification: with S3 media a capture, a recording and a thumbnail uploaded through the agent
API, and a PDF export, land in the bucket (and not on local disk); the console streams each to a staff member who may see the pupil and answers
404 to one who may not; a recording is served by ranges (each a ranged GET); retention deletes
the objects of what it removes; with S3_BUCKET in the environment the settings select the S3
backend, private and signed.
"""

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from safeguard.captures.exports import export_job_create
from safeguard.captures.models import Capture, CaptureStatus, ExportJob, Recording
from safeguard.groups.models import Device
from safeguard.logs.models import RetentionSettings
from safeguard.logs.retention import retention_apply
from tests.captures.test_api_captures import metadata, post_capture
from tests.captures.test_api_recording import MP4, post_recording
from tests.captures.test_exports import params as export_params
from tests.factories import CaptureFactory, KeywordFactory, KeywordPolicyFactory, RecordingFactory, png_bytes
from tests.faults.servers import free_port, wait_until
from tests.groups.test_api_thumbnail import upload as upload_thumbnail

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
KEYS = {"aws_access_key_id": "safeguard-test", "aws_secret_access_key": "safeguard-test-secret"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3 server process on a free loopback port; its URL. Stopped by its pid."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited: {log.read_text()}")
        try:
            return requests.get(f"{url}/moto-api/", timeout=1).ok
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=60, what="moto_server", log=log.read_text)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def bucket(s3_server, settings):
    """A new private bucket, made the default storage for this test (as S3_BUCKET would)."""
    name = f"safeguard-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **KEYS)
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "access_key": KEYS["aws_access_key_id"],
                "secret_key": KEYS["aws_secret_access_key"],
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }
    client.bucket = name
    return client


def keys(bucket) -> set[str]:
    listing = bucket.list_objects_v2(Bucket=bucket.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def stored_bytes(bucket, key: str) -> bytes:
    return bucket.get_object(Bucket=bucket.bucket, Key=key)["Body"].read()


def local_media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_default_storage_is_the_bucket(bucket):
    assert default_storage.__class__.__module__ == "storages.backends.s3"
    name = default_storage.save("probe/hello.txt", ContentFile(b"hello"))
    assert keys(bucket) == {name}


def test_a_capture_from_the_agent_api_lands_in_the_bucket_and_not_on_disk(
    bucket, device_client, settings, django_capture_on_commit_callbacks
):
    KeywordFactory(text="blade", severity="high", policy=KeywordPolicyFactory(name="Self-harm"))
    screenshot = png_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_capture(device_client, metadata(), screenshot=screenshot)

    assert response.status_code == 201, response.content
    capture = Capture.objects.get()
    assert capture.screenshot.name in keys(bucket)
    assert capture.screenshot_preview.name in keys(bucket)  # made after the commit, from the bucket
    assert stored_bytes(bucket, capture.screenshot.name)[:8] == b"\x89PNG\r\n\x1a\n"
    assert local_media_files(settings) == []
    acl = bucket.get_object_acl(Bucket=bucket.bucket, Key=capture.screenshot.name)
    assert not [grant for grant in acl["Grants"] if "URI" in grant["Grantee"]]  # no AllUsers/AuthenticatedUsers


def test_the_console_streams_a_screenshot_to_staff_who_may_see_it_and_404s_otherwise(bucket, client, cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9, screenshot=ContentFile(png_bytes(), "s.png"))
    assert capture.screenshot.name in keys(bucket)
    url = f"/console/captures/{capture.uuid}/screenshot"

    client.force_login(cast.teacher9)
    allowed = client.get(url)
    client.force_login(cast.teacher10)
    refused = client.get(url)

    assert allowed.status_code == 200
    assert body(allowed) == stored_bytes(bucket, capture.screenshot.name)
    assert allowed["Cache-Control"] == "private, no-store"
    assert "X-Accel-Redirect" not in allowed
    assert refused.status_code == 404


def test_a_recording_is_served_by_ranges_from_the_bucket(bucket, client, cast, device_client, settings):
    settings.SAFEGUARD_X_ACCEL_REDIRECT_PREFIX = "/protected-media/"  # local-disk only: ignored for S3
    capture = CaptureFactory(person=cast.pupil9, device=device_client.device)
    assert post_recording(device_client, capture.uuid).status_code == 201
    recording = Recording.objects.get()
    assert stored_bytes(bucket, recording.file.name) == MP4
    url = f"/console/recordings/{recording.uuid}/video"
    client.force_login(cast.teacher9)

    first = client.get(url, headers={"Range": "bytes=0-99"})
    middle = client.get(url, headers={"Range": "bytes=1000-1999"})
    tail = client.get(url, headers={"Range": "bytes=-16"})
    whole = client.get(url)
    beyond = client.get(url, headers={"Range": f"bytes={len(MP4)}-"})

    assert (first.status_code, body(first)) == (206, MP4[:100])
    assert first["Content-Range"] == f"bytes 0-99/{len(MP4)}"
    assert (middle.status_code, body(middle)) == (206, MP4[1000:2000])
    assert middle["Content-Length"] == "1000"
    assert (tail.status_code, body(tail)) == (206, MP4[-16:])
    assert (whole.status_code, body(whole)) == (200, MP4)
    assert whole["Accept-Ranges"] == "bytes" and whole["Content-Type"] == "video/mp4"
    assert "X-Accel-Redirect" not in whole
    assert beyond.status_code == 416
    client.force_login(cast.teacher10)
    assert client.get(url, headers={"Range": "bytes=0-99"}).status_code == 404


def test_a_missing_object_is_404(bucket, client, cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9, screenshot=ContentFile(png_bytes(), "s.png"))
    bucket.delete_object(Bucket=bucket.bucket, Key=capture.screenshot.name)
    client.force_login(cast.teacher9)
    assert client.get(f"/console/captures/{capture.uuid}/screenshot").status_code == 404


def test_retention_deletes_the_objects_of_what_it_removes(bucket, django_capture_on_commit_callbacks):
    rules = RetentionSettings.load()
    old = CaptureFactory(status=CaptureStatus.RESOLVED_FALSE_POSITIVE, screenshot=ContentFile(png_bytes(), "old.png"))
    RecordingFactory(capture=old, file=ContentFile(MP4, name="old.mp4"))
    kept = CaptureFactory(status=CaptureStatus.NEW, screenshot=ContentFile(png_bytes(), "kept.png"))
    Capture.objects.filter(pk=old.pk).update(
        updated_at=timezone.now() - timedelta(days=rules.captures_false_positive_days + 1)
    )
    old_keys = {old.screenshot.name, Recording.objects.get(capture=old).file.name}
    assert old_keys <= keys(bucket)

    with django_capture_on_commit_callbacks(execute=True):
        report = retention_apply()

    assert report["captures"] == {"rows": 1, "files": 2}
    assert keys(bucket) == {kept.screenshot.name}


def test_thumbnails_from_the_agent_api_replace_their_object_and_reach_only_staff_who_see_the_device(
    bucket, device_client, client, cast, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = upload_thumbnail(device_client, png_bytes(colour="red"))
    first_name = Device.objects.get(pk=device_client.device.pk).thumbnail.name
    with django_capture_on_commit_callbacks(execute=True):
        second = upload_thumbnail(device_client, png_bytes(colour="blue"))
    second_name = Device.objects.get(pk=device_client.device.pk).thumbnail.name

    assert (first.status_code, second.status_code) == (204, 204)
    assert second_name in keys(bucket) and first_name not in keys(bucket)  # the old one is deleted

    cast.device9.current_person = cast.pupil9  # teachers see a computer through who is at it
    cast.device9.thumbnail.save("t.png", ContentFile(png_bytes(colour="green")))
    url = f"/console/devices/{cast.device9.uuid}/thumbnail"
    client.force_login(cast.teacher9)
    allowed = client.get(url)
    client.force_login(cast.teacher10)
    assert client.get(url).status_code == 404
    assert (allowed.status_code, body(allowed)) == (200, stored_bytes(bucket, cast.device9.thumbnail.name))


def test_a_pdf_export_is_written_to_the_bucket_and_downloaded_by_its_requester_only(
    bucket, client, cast, django_capture_on_commit_callbacks
):
    CaptureFactory(person=cast.pupil9, device=cast.device9, screenshot=ContentFile(png_bytes(), "s.png"))
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process after the commit
        job = export_job_create(requested_by=cast.lead, params=export_params(person=cast.pupil9))
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.file.name in keys(bucket)
    url = f"/console/exports/{job.uuid}/download"

    client.force_login(cast.lead)
    download = client.get(url)
    client.force_login(cast.teacher9)
    assert client.get(url).status_code == 404

    assert download.status_code == 200
    pdf = body(download)
    assert pdf == stored_bytes(bucket, job.file.name)
    assert pdf.startswith(b"%PDF")
    assert download["Content-Disposition"].startswith("attachment;")


# --- settings ---------------------------------------------------------------------------------


PRINT_STORAGE = """
import json
from django.conf import settings
print(json.dumps({"default": settings.STORAGES["default"], "media": settings.MEDIA_URL}))
"""


def storage_settings(tmp_path, **variables: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("S3_")}
    env.update({"DJANGO_SETTINGS_MODULE": "safeguard.settings", "SAFEGUARD_VAR_DIR": str(tmp_path), "SECRET_KEY": "x"})
    env.update(variables)
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PRINT_STORAGE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_s3_bucket_in_the_environment_selects_private_signed_object_storage(tmp_path):
    chosen = storage_settings(
        tmp_path,
        S3_BUCKET="school-media",
        S3_ENDPOINT_URL="http://minio:9000",
        S3_ACCESS_KEY_ID="key",
        S3_SECRET_ACCESS_KEY="secret",
    )["default"]

    assert chosen["BACKEND"] == "storages.backends.s3.S3Storage"
    options = chosen["OPTIONS"]
    assert options["bucket_name"] == "school-media"
    assert options["endpoint_url"] == "http://minio:9000"
    assert (options["access_key"], options["secret_key"]) == ("key", "secret")
    assert options["default_acl"] is None and options["querystring_auth"] is True
    assert options["file_overwrite"] is False


def test_without_s3_bucket_media_stays_on_local_disk(tmp_path):
    chosen = storage_settings(tmp_path, S3_BUCKET="")["default"]
    assert chosen == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
