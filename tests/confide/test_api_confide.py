"""POST /api/v1/agent/confide: a pupil's concern, named or anonymous, stored exactly once."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from safeguard.confide.models import ConfideReport
from safeguard.groups.models import Person
from safeguard.logs.models import AuditEntry

URL = "/api/v1/agent/confide"


def report(**overrides) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "message": "Someone keeps messaging me at night and it scares me.",
        "about": "me",
        "anonymous": False,
        "user": "SCHOOL\\jsmith",
        "occurred_at": (timezone.now() - timedelta(minutes=3)).isoformat(),
        **overrides,
    }


def row_values(report_row: ConfideReport) -> str:
    """Every column of the stored row, as text, to search for traces of the sender."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ConfideReport._meta.db_table} WHERE id = %s", [report_row.pk])  # noqa: S608
        return " ".join(str(value) for value in cursor.fetchone())


@pytest.mark.django_db
def test_a_named_report_is_stored_with_the_person_and_device(device_client):
    body = report(about="someone_else")

    response = device_client.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == {"id": body["id"]}
    stored = ConfideReport.objects.get(uuid=body["id"])
    assert stored.message == body["message"]
    assert stored.about == "someone_else"
    assert not stored.is_anonymous
    assert stored.person == Person.objects.get(username="SCHOOL\\jsmith")
    assert stored.device == device_client.device
    assert stored.reported_at == datetime.fromisoformat(body["occurred_at"])
    assert stored.status == ConfideReport.Status.NEW


@pytest.mark.django_db
def test_an_anonymous_report_keeps_no_trace_of_the_sender(device_client, caplog):
    occurred = timezone.now().replace(minute=37, second=12, microsecond=345678) - timedelta(hours=1)
    body = report(anonymous=True, user="SCHOOL\\secretpupil", occurred_at=occurred.isoformat())

    with caplog.at_level(logging.DEBUG):
        response = device_client.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    stored = ConfideReport.objects.get(uuid=body["id"])
    assert stored.is_anonymous
    assert stored.person is None and stored.device is None
    assert stored.reported_at == occurred.replace(minute=0, second=0, microsecond=0)
    for moment in (stored.created_at, stored.updated_at):
        assert (moment.minute, moment.second, moment.microsecond) == (0, 0, 0)
    # The user field is ignored: not stored in the row, no person created, nothing logged.
    values = row_values(stored)
    assert "secretpupil" not in values
    assert device_client.device.hostname not in values
    assert str(device_client.device.uuid) not in values
    assert not Person.objects.filter(username__icontains="secretpupil").exists()
    assert "secretpupil" not in caplog.text
    assert device_client.device.hostname not in caplog.text
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_an_anonymous_report_needs_no_user_and_ignores_a_malformed_one(device_client):
    without = report(anonymous=True)
    del without["user"]
    assert device_client.post(URL, without, format="json").status_code == 201
    malformed = report(anonymous=True, user="bad\x00name" * 100)
    assert device_client.post(URL, malformed, format="json").status_code == 201
    assert not Person.objects.exists()


@pytest.mark.django_db
def test_a_resend_is_answered_200_and_stores_nothing_new(device_client):
    body = report()
    assert device_client.post(URL, body, format="json").status_code == 201

    again = device_client.post(URL, {**body, "message": "changed on resend"}, format="json")

    assert again.status_code == 200
    assert again.json() == {"id": body["id"]}
    assert ConfideReport.objects.count() == 1
    assert ConfideReport.objects.get().message == body["message"]


@pytest.mark.django_db
def test_an_anonymous_resend_is_answered_200(device_client):
    body = report(anonymous=True)
    assert device_client.post(URL, body, format="json").status_code == 201
    assert device_client.post(URL, body, format="json").status_code == 200
    assert ConfideReport.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["id", "message", "about", "anonymous", "occurred_at"])
def test_a_missing_field_is_named(device_client, missing):
    body = report()
    del body[missing]
    response = device_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["fields"]
    assert not ConfideReport.objects.exists()


@pytest.mark.django_db
def test_a_named_report_needs_a_user(device_client):
    for body in (report(user=""), report(user=None), {k: v for k, v in report().items() if k != "user"}):
        response = device_client.post(URL, body, format="json")
        assert response.status_code == 400
        assert "user" in response.json()["fields"]
    assert not ConfideReport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("id", 12),
        ("message", ""),
        ("message", "   "),
        ("message", "x" * 5001),
        ("about", "them"),
        ("anonymous", "perhaps"),
        ("user", "SCHOOL\\tab\tname"),
        ("occurred_at", "yesterday"),
        ("occurred_at", "2024-05-01T10:00:00"),  # no zone offset
        ("occurred_at", (timezone.now() + timedelta(days=2)).isoformat()),  # the future
    ],
)
def test_bad_values_are_named(device_client, field, value):
    response = device_client.post(URL, report(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not ConfideReport.objects.exists()


@pytest.mark.django_db
def test_a_5000_character_message_is_accepted(device_client):
    assert device_client.post(URL, report(message="x" * 5000), format="json").status_code == 201


@pytest.mark.django_db
def test_malformed_json_names_body(device_client):
    response = device_client.post(URL, '{"id": "', content_type="application/json")
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_an_oversized_body_is_refused_with_413(device_client):
    response = device_client.post(URL, report(message="x" * (1024 * 1024)), format="json")
    assert response.status_code == 413
    assert not ConfideReport.objects.exists()


@pytest.mark.django_db
def test_unauthenticated_reports_are_refused():
    response = APIClient().post(URL, report(), format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert not ConfideReport.objects.exists()


@pytest.mark.django_db
def test_anonymous_time_is_truncated_to_the_utc_hour_whatever_the_senders_zone(device_client):
    body = report(anonymous=True, occurred_at="2024-05-01T10:47:13.5+05:30")
    assert device_client.post(URL, body, format="json").status_code == 201
    assert ConfideReport.objects.get().reported_at == datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
