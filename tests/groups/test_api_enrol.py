"""POST /api/v1/agent/enrol: trading an enrolment code for a device identity and token."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from safeguard.core.tokens import hash_secret
from safeguard.groups.models import Device, DeviceToken, EnrolmentCode, Membership
from safeguard.groups.services import enrolment_code_create
from tests.conftest import device_api_client
from tests.factories import DeviceGroupFactory

URL = "/api/v1/agent/enrol"


def payload(code: str, **overrides) -> dict:
    return {"code": code, "hostname": "LAB1-PC07", "os": "Windows 11 Pro", "agent_version": "1.0.0", **overrides}


@pytest.fixture
def code(db) -> str:
    return enrolment_code_create(label="Lab 1")[1]


def assert_refused_code(response) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]
    assert "code" in body["fields"]


@pytest.mark.django_db
def test_enrol_creates_a_device_and_a_working_token(code):
    response = APIClient().post(URL, payload(code), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"device_id", "token"}
    device = Device.objects.get(uuid=body["device_id"])
    assert (device.hostname, device.os, device.agent_version) == ("LAB1-PC07", "Windows 11 Pro", "1.0.0")
    assert device.enrolled_at is not None
    assert len(body["token"]) >= 43  # 32 random bytes, URL-safe base64
    token_row = DeviceToken.objects.get(device=device)
    assert token_row.token_hash == hash_secret(body["token"])
    assert body["token"] not in token_row.token_hash
    assert device_api_client(body["token"]).get("/api/v1/agent/config").status_code == 200


@pytest.mark.django_db
def test_each_enrolment_gets_its_own_device_and_token():
    code = enrolment_code_create(max_uses=2)[1]
    first = APIClient().post(URL, payload(code), format="json").json()
    second = APIClient().post(URL, payload(code, hostname="LAB1-PC08"), format="json").json()
    assert first["device_id"] != second["device_id"]
    assert first["token"] != second["token"]
    assert DeviceToken.objects.get(token_hash=hash_secret(second["token"])).device.hostname == "LAB1-PC08"


@pytest.mark.django_db
def test_the_code_may_be_typed_loosely(code):
    loose = code.lower().replace("-", " ")
    assert APIClient().post(URL, payload(loose), format="json").status_code == 201


@pytest.mark.django_db
def test_a_single_use_code_is_refused_the_second_time(code):
    assert APIClient().post(URL, payload(code), format="json").status_code == 201
    assert_refused_code(APIClient().post(URL, payload(code, hostname="LAB1-PC08"), format="json"))
    assert Device.objects.count() == 1
    assert EnrolmentCode.objects.get().uses == 1


@pytest.mark.django_db
def test_unknown_code_is_refused():
    assert_refused_code(APIClient().post(URL, payload("ABCD-EFGH-JKLM-NPQR"), format="json"))
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_expired_code_is_refused():
    code = enrolment_code_create(expires_at=timezone.now() + timedelta(days=1))[1]
    EnrolmentCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_refused_code(APIClient().post(URL, payload(code), format="json"))
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_revoked_code_is_refused(code):
    EnrolmentCode.objects.update(revoked_at=timezone.now())
    assert_refused_code(APIClient().post(URL, payload(code), format="json"))


@pytest.mark.django_db
def test_a_code_with_a_device_group_puts_the_device_in_it():
    room = DeviceGroupFactory(name="Library")
    code = enrolment_code_create(device_group=room)[1]
    body = APIClient().post(URL, payload(code), format="json").json()
    assert Membership.objects.filter(group=room, device__uuid=body["device_id"]).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["code", "hostname", "os", "agent_version"])
def test_missing_field_is_named(code, missing):
    body = payload(code)
    del body[missing]
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["fields"]
    assert EnrolmentCode.objects.get().uses == 0  # a refused request uses nothing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", ""),
        ("hostname", "x" * 256),
        ("hostname", "PC\n01"),
        ("hostname", {"a": 1}),
        ("code", ["A"]),
        ("code", None),
    ],
)
def test_bad_values_are_named(code, field, value):
    body = payload(code)
    body[field] = value
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


@pytest.mark.django_db
def test_malformed_json_names_body(code):
    response = APIClient().post(URL, '{"code": ', content_type="application/json")
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_a_json_array_names_body(code):
    response = APIClient().post(URL, [payload(code)], format="json")
    assert response.status_code == 400
    assert "body" in response.json()["fields"]


@pytest.mark.django_db
def test_form_data_is_refused_with_415(code):
    response = APIClient().post(URL, payload(code), format="multipart")
    assert response.status_code == 415
    assert "content_type" in response.json()["fields"]


@pytest.mark.django_db
def test_oversized_body_is_refused_with_413(code):
    response = APIClient().post(URL, payload(code, os="x" * (1024 * 1024 + 1)), format="json")
    assert response.status_code == 413
    assert response.json()["fields"] == {"body": ["too large"]}
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_unknown_fields_are_ignored(code):
    response = APIClient().post(URL, payload(code, serial_number="X1"), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_an_authorization_header_is_not_needed_nor_checked(code):
    """Enrolment is the one unauthenticated call: a stale token from an old install does not block it."""
    response = device_api_client("stale-token-from-before").post(URL, payload(code), format="json")
    assert response.status_code == 201
