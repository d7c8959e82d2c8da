"""Logging in to the console, and throttling of repeated failed logins (django-axes)."""

import pytest
from django.test import Client

from tests.factories import PASSWORD, StaffUserFactory

pytestmark = pytest.mark.django_db


def post_login(client: Client, username: str, password: str, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_the_login_page_has_labelled_fields(client):
    html = client.get("/accounts/login/").content.decode()

    assert '<label for="id_username">' in html and 'id="id_username"' in html
    assert '<label for="id_password">' in html and 'id="id_password"' in html


def test_a_right_password_logs_in_and_lands_on_the_console(client):
    StaffUserFactory(username="lead")

    response = post_login(client, "lead", PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_a_wrong_password_shows_the_form_again(client):
    StaffUserFactory(username="lead")

    response = post_login(client, "lead", "wrong")

    assert response.status_code == 200
    assert "didn&#x27;t match" in response.content.decode() or "didn't match" in response.content.decode()


def test_repeated_failures_lock_the_username_out_even_with_the_right_password(settings):
    settings.AXES_FAILURE_LIMIT = 3
    StaffUserFactory(username="lead")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        post_login(attacker, "lead", "guess")

    # The owner, from another computer, is refused too while the lockout lasts.
    owner = Client(REMOTE_ADDR="198.51.100.7")
    response = post_login(owner, "lead", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert owner.get("/console/").status_code == 302  # not logged in


def test_repeated_failures_from_one_address_lock_that_address_out(settings):
    settings.AXES_FAILURE_LIMIT = 3
    StaffUserFactory(username="teacher")
    sprayer = Client(REMOTE_ADDR="203.0.113.9")
    for index in range(3):
        post_login(sprayer, f"nobody{index}", "guess")

    assert post_login(sprayer, "teacher", PASSWORD).status_code == 429
    # Another address with the same account is fine.
    assert post_login(Client(REMOTE_ADDR="198.51.100.7"), "teacher", PASSWORD).status_code == 302


def test_a_success_resets_the_count(settings):
    settings.AXES_FAILURE_LIMIT = 3
    StaffUserFactory(username="lead")
    client = Client(REMOTE_ADDR="198.51.100.7")
    post_login(client, "lead", "typo")
    post_login(client, "lead", "typo")
    assert post_login(client, "lead", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    post_login(client, "lead", "typo")
    post_login(client, "lead", "typo")

    assert post_login(client, "lead", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(settings):
    settings.AXES_FAILURE_LIMIT = 2
    StaffUserFactory(username="admin", is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(2):
        client.post("/admin/login/", {"username": "admin", "password": "guess"})

    response = client.post("/admin/login/", {"username": "admin", "password": PASSWORD})

    assert response.status_code == 429


def test_behind_proxies_the_client_address_comes_from_x_forwarded_for(settings):
    """Behind nginx every request comes from the proxy: throttling by REMOTE_ADDR would lock everyone out."""
    settings.AXES_FAILURE_LIMIT = 2
    settings.SAFEGUARD_TRUSTED_PROXIES = 1
    StaffUserFactory(username="teacher")
    sprayer = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    for index in range(2):
        post_login(sprayer, f"nobody{index}", "guess")

    colleague = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert post_login(colleague, "teacher", PASSWORD).status_code == 302
    # A forged address at the left of the header does not get the sprayer out of the lockout.
    forged = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9")
    assert post_login(forged, "teacher", PASSWORD).status_code == 429


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/thumbnails/", "/console/recordings/", "/console/confide/", "/console/assistance/"],
)
def test_everything_under_console_requires_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_an_it_admin_sees_lockouts_in_the_admin_and_can_lift_one(settings):
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.urls import reverse

    settings.AXES_FAILURE_LIMIT = 2
    StaffUserFactory(username="teacher")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(2):
        post_login(attacker, "teacher", "guess")
    admin = Client()
    admin.force_login(StaffUserFactory(username="it", is_staff=True, is_superuser=True))

    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        assert admin.get(reverse(f"admin:axes_{model._meta.model_name}_changelist")).status_code == 200
    attempt = AccessAttempt.objects.get(username="teacher")
    change = admin.get(reverse("admin:axes_accessattempt_change", args=[attempt.pk]))
    assert change.status_code == 200 and "teacher" in change.content.decode()
    assert admin.get(reverse("admin:axes_accessattempt_add")).status_code == 403

    admin.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})

    assert post_login(Client(REMOTE_ADDR="198.51.100.7"), "teacher", PASSWORD).status_code == 302


def test_an_expired_session_sends_htmx_polling_to_the_login_page_instead_of_swapping_it_in(client):
    response = client.get(
        "/console/thumbnails/grid",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/console/thumbnails/?group=x"},
    )

    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Fconsole%2Fthumbnails%2F%3Fgroup%3Dx"
    assert client.get("/console/assistance/", headers={"HX-Request": "true"})["HX-Redirect"].startswith(
        "/accounts/login/?next="
    )
