"""`Authorization: Device <token>`: who gets in to the agent API, and what everyone else is told."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from safeguard.core.tokens import hash_secret
from safeguard.groups.models import DeviceToken
from safeguard.groups.services import device_revoke, device_token_rotate
from tests.conftest import device_api_client

HEARTBEAT = "/api/v1/agent/heartbeat"
CONFIG = "/api/v1/agent/config"


def assert_refused(response) -> None:
    """401 in the API's error shape, with the challenge naming the Device scheme."""
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Device"
    body = response.json()
    assert set(body) == {"error", "fields"}
    assert body["error"]
    assert body["fields"] == {}


@pytest.mark.django_db
def test_a_valid_token_is_accepted(device_client):
    response = device_client.post(HEARTBEAT, {}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_the_scheme_name_is_case_insensitive(device_client):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"device {device_client.token}")
    assert client.get(CONFIG).status_code == 200


@pytest.mark.django_db
def test_no_header_is_refused(device_client):
    assert_refused(APIClient().post(HEARTBEAT, {}, format="json"))


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer {token}", "Token {token}", "Basic {token}", "{token}", "Device", "Device "])
def test_wrong_scheme_or_missing_token_is_refused(device_client, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=device_client.token))
    assert_refused(client.get(CONFIG))


@pytest.mark.django_db
def test_forged_token_is_refused(device_client):
    forged = device_client.token[:-4] + ("AAAA" if not device_client.token.endswith("AAAA") else "BBBB")
    assert_refused(device_api_client(forged).get(CONFIG))


@pytest.mark.django_db
def test_the_stored_hash_is_not_a_token(device_client):
    """Someone who reads the database cannot use what they read."""
    stored = DeviceToken.objects.get(device=device_client.device).token_hash
    assert stored == hash_secret(device_client.token)
    assert device_client.token not in stored
    assert_refused(device_api_client(stored).get(CONFIG))


@pytest.mark.django_db
def test_revoked_token_is_refused(device_client):
    DeviceToken.objects.filter(device=device_client.device).update(revoked_at=timezone.now())
    assert_refused(device_client.get(CONFIG))


@pytest.mark.django_db
def test_rotation_revokes_the_old_token_and_the_new_one_works(device_client):
    new_token = device_token_rotate(device=device_client.device)
    assert_refused(device_client.get(CONFIG))
    assert device_api_client(new_token).get(CONFIG).status_code == 200


@pytest.mark.django_db
def test_revoked_device_is_refused_even_with_an_unrevoked_token(device_client):
    from safeguard.groups.models import Device

    Device.objects.filter(pk=device_client.device.pk).update(revoked_at=timezone.now())
    assert DeviceToken.objects.filter(device=device_client.device, revoked_at__isnull=True).exists()
    assert_refused(device_client.get(CONFIG))


@pytest.mark.django_db
def test_device_revoke_stops_every_endpoint(device_client):
    device_revoke(device=device_client.device)
    assert_refused(device_client.get(CONFIG))
    assert_refused(device_client.post(HEARTBEAT, {}, format="json"))


@pytest.mark.django_db
def test_a_staff_session_is_not_a_device(cast, client):
    """The agent API does not accept console logins: only device tokens."""
    client.force_login(cast.admin)
    response = client.get(CONFIG)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"


@pytest.mark.django_db
def test_last_used_is_recorded(device_client):
    assert DeviceToken.objects.get(device=device_client.device).last_used_at is None
    device_client.get(CONFIG)
    assert DeviceToken.objects.get(device=device_client.device).last_used_at is not None
