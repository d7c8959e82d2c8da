"""POST /api/v1/agent/heartbeat: seen-marking, current user, pause state, audit trail and commands."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from safeguard.groups.models import Device, DeviceCommand, Person
from safeguard.groups.services import device_command_claim_pending
from safeguard.logs.models import AuditEntry
from tests.factories import DeviceCommandFactory, PersonFactory, enrolled_device

URL = "/api/v1/agent/heartbeat"


def beat(client, **body):
    return client.post(URL, body, format="json")


@pytest.mark.django_db
def test_an_empty_heartbeat_marks_the_device_seen(device_client):
    Device.objects.filter(pk=device_client.device.pk).update(last_seen_at=timezone.now() - timedelta(hours=3))
    before = timezone.now()

    response = beat(device_client)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["commands"] == []
    server_time = parse_datetime(body["server_time"])
    assert server_time is not None and server_time.tzinfo is not None
    device = Device.objects.get(pk=device_client.device.pk)
    assert device.last_seen_at >= before
    assert device.current_person is None


@pytest.mark.django_db
def test_first_sight_of_a_user_creates_them_and_makes_them_current(device_client):
    response = beat(device_client, user="SCHOOL\\newpupil", agent_version="1.2.0")

    assert response.status_code == 200
    person = Person.objects.get(username="SCHOOL\\newpupil")
    assert person.first_seen_at is not None and person.last_seen_at is not None
    device = Device.objects.get(pk=device_client.device.pk)
    assert device.current_person == person
    assert device.agent_version == "1.2.0"


@pytest.mark.django_db
def test_a_known_user_is_matched_case_insensitively(device_client):
    pupil = PersonFactory(username="SCHOOL\\jsmith")
    beat(device_client, user="school\\JSMITH")
    assert Person.objects.filter(username__iexact="school\\jsmith").count() == 1
    assert Device.objects.get(pk=device_client.device.pk).current_person == pupil


@pytest.mark.django_db
def test_omitting_the_user_keeps_the_last_known_one(device_client):
    beat(device_client, user="SCHOOL\\jsmith")
    beat(device_client, user=None)
    beat(device_client)
    assert Device.objects.get(pk=device_client.device.pk).current_person.username == "SCHOOL\\jsmith"


@pytest.mark.django_db
def test_pause_is_stored_and_audited_with_the_hostname_as_actor(device_client):
    until = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)

    response = beat(device_client, user="SCHOOL\\jsmith", event="paused", monitoring_paused_until=until.isoformat())

    assert response.status_code == 200, response.content
    assert Device.objects.get(pk=device_client.device.pk).monitoring_paused_until == until
    entry = AuditEntry.objects.get(action="device.paused")
    assert entry.actor is None
    assert entry.actor_name == device_client.device.hostname
    assert (entry.target_type, entry.target_id) == ("device", str(device_client.device.uuid))
    assert entry.after["monitoring_paused_until"] == until.isoformat()
    assert entry.after["user"] == "SCHOOL\\jsmith"


@pytest.mark.django_db
def test_resume_clears_the_pause_and_is_audited(device_client):
    beat(device_client, event="paused", monitoring_paused_until=(timezone.now() + timedelta(hours=1)).isoformat())
    beat(device_client, event="resumed", monitoring_paused_until=None)
    assert Device.objects.get(pk=device_client.device.pk).monitoring_paused_until is None
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "device.paused",
        "device.resumed",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("event", ["started", "stopping"])
def test_start_and_stop_are_audited(device_client, event):
    beat(device_client, event=event)
    assert AuditEntry.objects.filter(action=f"device.{event}", actor_name=device_client.device.hostname).count() == 1


@pytest.mark.django_db
def test_a_plain_heartbeat_writes_no_audit_row_and_keeps_the_pause(device_client):
    until = timezone.now() + timedelta(minutes=30)
    Device.objects.filter(pk=device_client.device.pk).update(monitoring_paused_until=until)
    beat(device_client, user="SCHOOL\\jsmith")
    assert not AuditEntry.objects.exists()
    assert Device.objects.get(pk=device_client.device.pk).monitoring_paused_until == until


@pytest.mark.django_db
def test_pending_commands_are_delivered_once(device_client):
    first = DeviceCommandFactory(device=device_client.device, params={"seconds": 30})
    second = DeviceCommandFactory(device=device_client.device, params={"seconds": 10})
    other_device_command = DeviceCommandFactory()

    body = beat(device_client).json()

    assert body["commands"] == [
        {"id": str(first.uuid), "type": "record_screen", "params": {"seconds": 30}},
        {"id": str(second.uuid), "type": "record_screen", "params": {"seconds": 10}},
    ]
    assert beat(device_client).json()["commands"] == []
    assert DeviceCommand.objects.filter(device=device_client.device, delivered_at__isnull=True).count() == 0
    other_device_command.refresh_from_db()
    assert other_device_command.delivered_at is None


@pytest.mark.django_db
def test_an_already_delivered_command_is_not_sent_again(device_client):
    DeviceCommandFactory(device=device_client.device, delivered_at=timezone.now())
    assert beat(device_client).json()["commands"] == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_deliver_each_command_exactly_once():
    """Several heartbeats of one device at once: every command goes out in exactly one of them."""
    device, _ = enrolled_device()
    commands = {str(DeviceCommandFactory(device=device).uuid) for _ in range(5)}
    workers = 4
    barrier = threading.Barrier(workers)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            barrier.wait(timeout=30)
            for _attempt in range(200):
                try:
                    claimed = device_command_claim_pending(device=device)
                    break
                except OperationalError as exc:
                    # SQLite's in-memory test database (shared cache) answers a concurrent writer
                    # "table is locked" at once instead of waiting as a file database does; an
                    # agent whose heartbeat fails simply sends the next one, so retry likewise.
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.01)
            else:
                raise AssertionError("could not claim for 2 seconds")
            results.append([str(command.uuid) for command in claimed])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    delivered = [uuid for batch in results for uuid in batch]
    assert sorted(delivered) == sorted(commands)  # every command once, none twice
    assert DeviceCommand.objects.filter(delivered_at__isnull=True).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "SCHOOL\\bad\x07name"),
        ("user", "x" * 256),
        ("user", ["SCHOOL\\jsmith"]),
        ("event", "exploded"),
        ("monitoring_paused_until", "tomorrow"),
        ("monitoring_paused_until", "2030-01-01T10:00:00"),  # no zone offset
        ("agent_version", ["1.0"]),
    ],
)
def test_bad_input_is_refused_naming_the_field(device_client, field, value):
    response = beat(device_client, **{field: value})
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Person.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_malformed_json_names_body(device_client):
    response = device_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_oversized_body_is_refused_with_413(device_client):
    response = beat(device_client, user="x" * (1024 * 1024 + 10))
    assert response.status_code == 413
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_unauthenticated_heartbeat_is_refused_and_changes_nothing(device_client):
    DeviceCommandFactory(device=device_client.device)
    response = APIClient().post(URL, {"user": "SCHOOL\\jsmith"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert not Person.objects.exists()
    assert DeviceCommand.objects.get().delivered_at is None
