"""POST /api/v1/agent/pause: the staff PIN pauses a device's monitoring; wrong PINs are audited and throttled."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from safeguard.groups.models import Device
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import AgentSettings
from tests.conftest import device_api_client
from tests.factories import enrolled_device

URL = "/api/v1/agent/pause"
PIN = "4821"


@pytest.fixture
def pin_set(db):
    row = AgentSettings.load()
    row.disable_pin_hash = make_password(PIN)
    row.save()
    return row


def pause(client, pin=PIN, minutes=30, **extra):
    return client.post(URL, {"pin": pin, "minutes": minutes, **extra}, format="json")


def paused_until(device) -> object:
    return Device.objects.get(pk=device.pk).monitoring_paused_until


@pytest.mark.django_db
def test_the_right_pin_pauses_the_device_and_is_audited(device_client, pin_set):
    before = timezone.now()

    response = pause(device_client, minutes=45, user="SCHOOL\\jsmith")

    assert response.status_code == 200, response.content
    until = parse_datetime(response.json()["monitoring_paused_until"])
    assert before + timedelta(minutes=45) <= until <= timezone.now() + timedelta(minutes=45)
    assert paused_until(device_client.device) == until
    entry = AuditEntry.objects.get(action="device.paused")
    assert entry.actor is None and entry.actor_name == device_client.device.hostname
    assert entry.target_id == str(device_client.device.uuid)
    assert entry.after["user"] == "SCHOOL\\jsmith"
    assert entry.after["minutes"] == 45
    assert entry.after["via"] == "staff PIN"
    assert PIN not in str(entry.after) + entry.summary


@pytest.mark.django_db
def test_a_wrong_pin_is_refused_audited_and_pauses_nothing(device_client, pin_set):
    response = pause(device_client, pin="0000", user="SCHOOL\\jsmith")

    assert response.status_code == 403
    assert response.json() == {"error": "Wrong PIN.", "fields": {"pin": ["incorrect"]}}
    assert paused_until(device_client.device) is None
    entry = AuditEntry.objects.get(action="device.pause_pin_refused")
    assert entry.after == {"user": "SCHOOL\\jsmith", "minutes": 30}
    assert "0000" not in entry.summary
    assert not AuditEntry.objects.filter(action="device.paused").exists()


@pytest.mark.django_db
def test_without_a_pin_on_the_server_nothing_can_be_paused(device_client):
    row = AgentSettings.load()
    row.disable_pin_hash = ""
    row.save()

    response = pause(device_client, pin="1234")

    assert response.status_code == 403
    assert response.json()["fields"] == {"pin": ["no staff PIN is set"]}
    assert response.json()["error"].startswith("No staff PIN is set on the server")
    assert paused_until(device_client.device) is None


@pytest.mark.django_db
def test_five_wrong_pins_lock_the_device_out_for_fifteen_minutes(device_client, pin_set):
    for _ in range(5):
        assert pause(device_client, pin="1111").status_code == 403

    response = pause(device_client)  # even the right PIN is not checked now

    assert response.status_code == 429
    assert set(response.json()) == {"error", "fields"}
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert paused_until(device_client.device) is None
    assert AuditEntry.objects.filter(action="device.pause_pin_refused").count() == 5

    # Once the window has passed (the failures are older than 15 minutes), the PIN is checked again.
    # (Audit rows cannot be backdated, PostgreSQL refuses: the clock moves on instead.)
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(minutes=16)):
        assert pause(device_client).status_code == 200


@pytest.mark.django_db
def test_the_throttle_is_per_device(device_client, pin_set):
    for _ in range(5):
        pause(device_client, pin="1111")
    other, token = enrolled_device()

    assert pause(device_api_client(token)).status_code == 200
    assert pause(device_client).status_code == 429


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pin": PIN, "minutes": 0}, "minutes"),
        ({"pin": PIN, "minutes": 24 * 60 + 1}, "minutes"),
        ({"pin": PIN}, "minutes"),
        ({"minutes": 10}, "pin"),
        ({"pin": PIN, "minutes": 10, "user": "a\tb"}, "user"),
    ],
)
def test_bad_requests_are_400_naming_the_field(device_client, pin_set, body, field):
    response = device_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not AuditEntry.objects.filter(action__startswith="device.pause").exists()


@pytest.mark.django_db
def test_without_a_device_token_it_is_401(pin_set):
    response = pause(device_api_client("forged"))
    assert response.status_code == 401
    assert not AuditEntry.objects.exists()
