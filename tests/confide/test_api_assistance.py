"""POST /api/v1/agent/assistance: a pupil asks staff for help, stored exactly once."""

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from safeguard.confide.models import AssistanceRequest
from safeguard.groups.models import Person
from tests.factories import PersonFactory

URL = "/api/v1/agent/assistance"


def request_body(**overrides) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "user": "SCHOOL\\jsmith",
        "message": "I can't log in to my maths homework.",
        "occurred_at": (timezone.now() - timedelta(seconds=30)).isoformat(),
        **overrides,
    }


@pytest.mark.django_db
def test_a_request_is_stored_with_person_device_and_time(device_client):
    body = request_body()

    response = device_client.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == {"id": body["id"]}
    stored = AssistanceRequest.objects.get(uuid=body["id"])
    assert stored.person == Person.objects.get(username="SCHOOL\\jsmith")
    assert stored.device == device_client.device
    assert stored.message == body["message"]
    assert stored.requested_at == datetime.fromisoformat(body["occurred_at"])
    assert stored.acknowledged_at is None


@pytest.mark.django_db
def test_the_message_is_optional(device_client):
    body = request_body()
    del body["message"]
    assert device_client.post(URL, body, format="json").status_code == 201
    assert device_client.post(URL, request_body(message=""), format="json").status_code == 201
    assert list(AssistanceRequest.objects.values_list("message", flat=True)) == ["", ""]


@pytest.mark.django_db
def test_a_known_person_is_reused(device_client):
    pupil = PersonFactory(username="SCHOOL\\jsmith")
    device_client.post(URL, request_body(user="school\\JSmith"), format="json")
    assert AssistanceRequest.objects.get().person == pupil
    assert Person.objects.count() == 1


@pytest.mark.django_db
def test_a_resend_is_answered_200_and_stores_nothing_new(device_client):
    body = request_body()
    assert device_client.post(URL, body, format="json").status_code == 201
    again = device_client.post(URL, {**body, "message": "different"}, format="json")
    assert again.status_code == 200
    assert again.json() == {"id": body["id"]}
    assert AssistanceRequest.objects.count() == 1
    assert AssistanceRequest.objects.get().message == body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["id", "user", "occurred_at"])
def test_a_missing_field_is_named(device_client, missing):
    body = request_body()
    del body[missing]
    response = device_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["fields"]
    assert not AssistanceRequest.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", 12),
        ("user", ""),
        ("user", "SCHOOL\\new\nline"),
        ("user", {"name": "x"}),
        ("message", "x" * 5001),
        ("occurred_at", "soon"),
        ("occurred_at", "2024-05-01 10:00"),  # no zone offset
        ("occurred_at", (timezone.now() + timedelta(hours=1)).isoformat()),  # the future
    ],
)
def test_bad_values_are_named(device_client, field, value):
    response = device_client.post(URL, request_body(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not AssistanceRequest.objects.exists()
    assert not Person.objects.exists()


@pytest.mark.django_db
def test_malformed_json_names_body(device_client):
    response = device_client.post(URL, "[1, 2", content_type="application/json")
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_an_oversized_body_is_refused_with_413(device_client):
    response = device_client.post(URL, request_body(message="x" * (1024 * 1024)), format="json")
    assert response.status_code == 413
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_unauthenticated_requests_are_refused():
    response = APIClient().post(URL, request_body(), format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert not AssistanceRequest.objects.exists()
