"""The admin site as a whole: its title, and Django's own models (users, permission groups)."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

# Each app's tests/<app>/test_admin.py opens every page of that app's registered models; this
# file covers the rest. A model registered from any other app fails the test below.
# (django-axes' login-attempt pages are covered by tests/console/test_login.py.)
APPS_WITH_THEIR_OWN_ADMIN_TESTS = {"groups", "policies", "captures", "logs", "confide", "axes"}

REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label not in APPS_WITH_THEIR_OWN_ADMIN_TESTS),
    key=lambda m: m._meta.label,
)

OBJECT_MAKERS = {
    get_user_model(): lambda: get_user_model().objects.create_user("it.admin", "it@school.test"),
    Group: lambda: Group.objects.create(name="IT technicians"),
    TOTPDevice: lambda: TOTPDevice.objects.create(
        user=get_user_model().objects.create_user("it.admin", "it@school.test"), name="phone", confirmed=True
    ),
}
# Models an admin may look at and delete but never add: a two-factor device is set up by its owner.
NO_ADD = {TOTPDevice}


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser_client(client, cast):
    client.force_login(cast.admin)
    return client


def test_every_registered_model_is_covered():
    assert set(REGISTERED) == set(OBJECT_MAKERS)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_changelist_add_and_change_pages_load(superuser_client, model):
    obj = OBJECT_MAKERS[model]()
    assert superuser_client.get(admin_url(model, "changelist")).status_code == 200
    assert superuser_client.get(admin_url(model, "add")).status_code == (403 if model in NO_ADD else 200)
    assert superuser_client.get(admin_url(model, "change", obj.pk)).status_code == 200


def test_site_header_and_title(superuser_client):
    page = superuser_client.get(reverse("admin:index")).content.decode()
    assert "<title>Configuration | Safeguard administration</title>" in page
    assert "Safeguard administration" in page.split("<body", 1)[1]


def test_admin_needs_a_staff_login(client, cast):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    client.force_login(cast.teacher9)  # console staff, not admin staff
    assert client.get(reverse("admin:index")).status_code == 302
