"""POST /api/v1/agent/thumbnail: the device's live screen thumbnail, replaced on every upload."""

import io

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from safeguard.groups.models import Device
from tests.factories import png_bytes

URL = "/api/v1/agent/thumbnail"


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 50), "teal").save(buffer, fmt)
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "shot.png", content_type: str = "image/png"):
    return client.post(URL, {"image": SimpleUploadedFile(name, data, content_type=content_type)}, format="multipart")


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_an_image_becomes_the_device_thumbnail(device_client, fmt, extension):
    data = image_bytes(fmt)
    response = upload(device_client, data)

    assert response.status_code == 204, response.content
    device = Device.objects.get(pk=device_client.device.pk)
    assert device.thumbnail_updated_at is not None
    assert device.thumbnail.name.startswith(f"thumbnails/{device.uuid}-")
    assert device.thumbnail.name.endswith(f".{extension}")  # from the content, not the client's name
    with device.thumbnail.open("rb") as stored:
        assert stored.read() == data


@pytest.mark.django_db
def test_the_clients_file_name_is_never_used(device_client):
    response = upload(device_client, png_bytes(), name="../../etc/evil name.php")
    assert response.status_code == 204
    name = Device.objects.get(pk=device_client.device.pk).thumbnail.name
    assert "evil" not in name and ".." not in name and name.endswith(".png")


@pytest.mark.django_db
def test_a_new_thumbnail_replaces_and_deletes_the_previous_file(device_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload(device_client, png_bytes(colour="red"))
    first = Device.objects.get(pk=device_client.device.pk).thumbnail.name
    assert default_storage.exists(first)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(device_client, png_bytes(colour="blue"))

    assert response.status_code == 204
    second = Device.objects.get(pk=device_client.device.pk).thumbnail.name
    assert second != first
    assert default_storage.exists(second)
    assert not default_storage.exists(first)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [b"not an image at all", b"GIF89a" + b"\x00" * 40, png_bytes()[:60], b""],
    ids=["text", "gif-header", "truncated-png", "empty"],
)
def test_a_non_image_is_refused_naming_image(device_client, data):
    response = upload(device_client, data)
    assert response.status_code == 400
    assert "image" in response.json()["fields"]
    assert not Device.objects.get(pk=device_client.device.pk).thumbnail


@pytest.mark.django_db
def test_a_gif_is_refused(device_client):
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "GIF")
    response = upload(device_client, buffer.getvalue(), name="a.gif", content_type="image/gif")
    assert response.status_code == 400
    assert "image" in response.json()["fields"]


@pytest.mark.django_db
def test_a_missing_image_is_refused_naming_image(device_client):
    response = device_client.post(URL, {"picture": SimpleUploadedFile("a.png", png_bytes())}, format="multipart")
    assert response.status_code == 400
    assert "image" in response.json()["fields"]


@pytest.mark.django_db
def test_an_image_over_2_mb_is_refused_with_413(device_client):
    response = upload(device_client, png_bytes() + b"\x00" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert "body" in response.json()["fields"]
    assert not Device.objects.get(pk=device_client.device.pk).thumbnail


@pytest.mark.django_db
def test_json_is_refused_with_415(device_client):
    response = device_client.post(URL, {"image": "aGVsbG8="}, format="json")
    assert response.status_code == 415


@pytest.mark.django_db
def test_unauthenticated_upload_is_refused(device_client):
    response = upload(APIClient(), png_bytes())
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert not Device.objects.get(pk=device_client.device.pk).thumbnail


@pytest.mark.django_db
def test_a_device_only_changes_its_own_thumbnail(device_client, cast):
    upload(device_client, png_bytes())
    cast.device.refresh_from_db()
    assert not cast.device.thumbnail
