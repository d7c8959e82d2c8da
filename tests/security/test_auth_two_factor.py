"""Two-factor login (TOTP, django-otp): set-up, verify after the password, who must use it.

Codes are computed from the device's key with django-otp's own TOTP implementation, as an
authenticator app would; logins go through the real login form.
"""

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from safeguard.logs.models import AuditEntry
from tests.factories import PASSWORD, StaffAccessFactory, StaffUserFactory, UserGroupFactory

pytestmark = pytest.mark.django_db


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for `device` now (or `steps_ahead` periods later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def log_in(client: Client, username: str, next_url: str = "/console/"):
    return client.post("/accounts/login/", {"username": username, "password": PASSWORD, "next": next_url})


def confirmed_device_for(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.fixture
def privileged(settings):
    settings.SAFEGUARD_2FA_REQUIRED = "privileged"


def test_off_by_default_a_password_is_enough(client):
    StaffUserFactory(username="teacher")

    log_in(client, "teacher")

    assert client.get("/console/").status_code == 200


def test_a_required_user_without_a_device_is_sent_to_set_up_then_in_with_a_code(client, privileged):
    StaffUserFactory(username="admin", is_staff=True, is_superuser=True)

    assert log_in(client, "admin")["Location"] == "/console/"
    response = client.get("/console/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/setup/")
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == ["/console/"]
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "QR code for your authenticator app" in html  # rendered here, no image service
    device = TOTPDevice.objects.get(user__username="admin")
    assert not device.confirmed
    # The key shown for typing is the device's key.
    shown = re.search(r'class="otp-key">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    from base64 import b32decode

    assert b32decode(shown + "=" * (-len(shown) % 8)) == device.bin_key

    done = client.post("/accounts/2fa/setup/", {"otp_token": code_for(device), "next": "/console/"})

    assert done.status_code == 302 and done["Location"] == "/console/"
    assert client.get("/console/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    entry = AuditEntry.objects.get(action="two_factor.enabled")
    assert entry.actor_name == "admin"


def test_set_up_refuses_a_wrong_code_and_keeps_the_device_unconfirmed(client, privileged):
    StaffUserFactory(username="admin", is_staff=True, is_superuser=True)
    log_in(client, "admin")
    client.get("/accounts/2fa/setup/")
    device = TOTPDevice.objects.get(user__username="admin")
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"

    response = client.post("/accounts/2fa/setup/", {"otp_token": wrong})

    assert response.status_code == 400
    assert "not right" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/console/").status_code == 302


def test_reloading_set_up_keeps_one_pending_device(client, privileged):
    StaffUserFactory(username="admin", is_staff=True)
    log_in(client, "admin")

    client.get("/accounts/2fa/setup/")
    client.get("/accounts/2fa/setup/")

    assert TOTPDevice.objects.filter(user__username="admin").count() == 1


def test_a_user_with_a_device_must_give_a_code_after_the_password(client):
    # Even with the setting off: someone who turned 2FA on is always asked for it.
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)

    log_in(client, "teacher")
    response = client.get("/console/captures/?status=new")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/verify/")
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == ["/console/captures/?status=new"]
    assert client.get("/accounts/2fa/verify/").status_code == 200

    verified = client.post("/accounts/2fa/verify/", {"otp_token": code_for(device), "next": "/console/captures/"})

    assert verified["Location"] == "/console/captures/"
    assert client.get("/console/captures/").status_code == 200


def test_a_wrong_code_is_refused_and_the_user_stays_out(client):
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    log_in(client, "teacher")
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"

    response = client.post("/accounts/2fa/verify/", {"otp_token": wrong})

    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


def test_a_code_cannot_be_used_twice(client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # this test is about replay, not the delay after a failure
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    code = code_for(device)
    log_in(client, "teacher")
    assert client.post("/accounts/2fa/verify/", {"otp_token": code}).status_code == 302
    client.post("/accounts/logout/")

    log_in(client, "teacher")
    replayed = client.post("/accounts/2fa/verify/", {"otp_token": code})

    assert replayed.status_code == 400
    assert client.get("/console/").status_code == 302
    # The next period's code still works.
    assert client.post("/accounts/2fa/verify/", {"otp_token": code_for(device, steps_ahead=1)}).status_code == 302


def test_after_a_wrong_code_even_the_right_one_waits(client, settings):
    # django-otp slows guessing down: each failure doubles a delay (factor seconds, here 60).
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    log_in(client, "teacher")
    client.post("/accounts/2fa/verify/", {"otp_token": f"{(int(code_for(device)) + 1) % 1_000_000:06d}"})

    response = client.post("/accounts/2fa/verify/", {"otp_token": code_for(device)})

    assert response.status_code == 400
    assert client.get("/console/").status_code == 302


def test_set_up_is_refused_once_a_device_exists(client):
    # Whoever holds only the password must not swap the owner's authenticator for their own.
    user = StaffUserFactory(username="teacher")
    confirmed_device_for(user)
    log_in(client, "teacher")

    response = client.get("/accounts/2fa/setup/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/verify/")
    assert TOTPDevice.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("who", "required"),
    [("superuser", True), ("admin_site_staff", True), ("confide_viewer", True), ("teacher", False)],
)
def test_privileged_means_admins_and_confide_viewers(client, privileged, who, required):
    group = UserGroupFactory()
    user = StaffUserFactory(
        username=who, is_superuser=who == "superuser", is_staff=who in ("superuser", "admin_site_staff")
    )
    StaffAccessFactory(user=user, group=group, is_confide_viewer=who == "confide_viewer")
    log_in(client, who)

    response = client.get("/console/")

    if required:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/setup/")
    else:
        assert response.status_code == 200


def test_everyone_means_every_staff_member(client, settings):
    settings.SAFEGUARD_2FA_REQUIRED = "everyone"
    StaffUserFactory(username="teacher")
    log_in(client, "teacher")

    assert client.get("/console/")["Location"].startswith("/accounts/2fa/setup/")


def test_the_admin_site_asks_for_the_code_too(client, privileged):
    user = StaffUserFactory(username="admin", is_staff=True, is_superuser=True)
    device = confirmed_device_for(user)
    client.post("/admin/login/", {"username": "admin", "password": PASSWORD, "next": "/admin/"})

    response = client.get("/admin/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/verify/")
    client.post("/accounts/2fa/verify/", {"otp_token": code_for(device)})
    assert client.get("/admin/").status_code == 200


def test_an_htmx_request_is_sent_to_verify_as_a_whole_page(client):
    user = StaffUserFactory(username="teacher")
    confirmed_device_for(user)
    log_in(client, "teacher")

    response = client.get("/console/assistance/", headers={"HX-Request": "true"})

    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/2fa/verify/")


def test_next_must_stay_on_this_site(client):
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    log_in(client, "teacher")

    response = client.post("/accounts/2fa/verify/", {"otp_token": code_for(device), "next": "https://evil.example/"})

    assert response["Location"] == "/console/"


def test_an_unknown_setting_is_a_configuration_error(client, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.SAFEGUARD_2FA_REQUIRED = "sometimes"
    StaffUserFactory(username="teacher")
    log_in(client, "teacher")

    with pytest.raises(ImproperlyConfigured):
        client.get("/console/")


def test_the_agent_api_is_not_affected(privileged, cast):
    from tests.conftest import device_api_client

    response = device_api_client(cast.device_token).post("/api/v1/agent/heartbeat", {}, format="json")

    assert response.status_code == 200, response.content


def test_a_session_api_request_of_an_unverified_user_gets_the_json_error(client):
    user = StaffUserFactory(username="teacher")
    confirmed_device_for(user)
    log_in(client, "teacher")

    response = client.get("/api/schema/")

    assert response.status_code == 403
    assert response.json()["fields"] == {"otp": ["verify at /accounts/2fa/verify/"]}


def test_an_admin_removing_a_device_is_audited(client, cast):
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    admin_device = confirmed_device_for(cast.admin)
    client.post("/admin/login/", {"username": "admin", "password": PASSWORD})
    client.post("/accounts/2fa/verify/", {"otp_token": code_for(admin_device)})

    response = client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    entry = AuditEntry.objects.get(action="two_factor.removed")
    assert entry.actor_name == "admin" and entry.target_id == str(user.pk)


def test_a_device_deleted_since_login_sends_the_user_on_or_to_set_up(client, settings):
    user = StaffUserFactory(username="teacher")
    device = confirmed_device_for(user)
    log_in(client, "teacher")
    assert client.get("/console/")["Location"].startswith("/accounts/2fa/verify/")

    device.delete()  # an admin's reset, while this session waits at the verify page

    assert client.get("/accounts/2fa/verify/?next=/console/")["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_checking_for_a_device_costs_no_query_per_page(client):
    StaffUserFactory(username="teacher")
    log_in(client, "teacher")
    client.get("/console/")

    with CaptureQueriesContext(connection) as queries:
        client.get("/console/")

    assert not [query for query in queries.captured_queries if "otp_totp" in query["sql"]]


def test_staff_without_two_factor_are_offered_it_and_verified_staff_are_not(client):
    user = StaffUserFactory(username="teacher")
    log_in(client, "teacher")

    assert 'href="/accounts/2fa/setup/">Turn on two-factor login' in client.get("/console/").content.decode()
    client.get("/accounts/2fa/setup/")
    device = TOTPDevice.objects.get(user=user)
    client.post("/accounts/2fa/setup/", {"otp_token": code_for(device)})

    assert "Turn on two-factor login" not in client.get("/console/").content.decode()
