"""Shared test setup: isolated media, eager Celery by default, and the cast of people for access tests."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from safeguard.celery import app as celery_app
from tests.factories import (
    DeviceFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
    enrolled_device,
)

pytest_plugins = ["tests.workers", "tests.smtp"]


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The real hasher costs ~0.3 s a password; tests create many accounts and test no hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """Tasks run in-process, except in tests with a real worker (the `celery_worker` fixture).

    Keyed on the fixture, not the `integration` marker: with REDIS_URL set (as CI sets it) an
    integration test without a worker would otherwise queue its tasks where nothing runs them.
    """
    if "celery_worker" in request.fixturenames:
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def pytest_generate_tests(metafunc):
    """Run an app's AdminPagesContract tests once per model the app registers in the admin."""
    if "admin_model" in metafunc.fixturenames and metafunc.cls is not None:
        from tests.admin_pages import registered_models

        models = registered_models(metafunc.cls.app_label)
        metafunc.parametrize("admin_model", models, ids=[m._meta.model_name for m in models])


@pytest.fixture
def superuser_client(client, cast):
    """A test client logged in as the cast's superuser."""
    client.force_login(cast.admin)
    return client


def device_api_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client


@dataclass
class Cast:
    """The people of every access test: who may see what."""

    year9: object
    year10: object
    pupil9: object
    pupil10: object
    device9: object
    device10: object
    lead: object  # safeguarding lead: every group, all rights, Confide viewer
    teacher9: object  # sees Year 9 only
    teacher10: object  # sees Year 10 only
    confide_viewer: object  # Confide right on every group, no capture rights
    outsider: object  # staff account with no group access
    admin: object  # superuser
    device: object  # an enrolled device
    device_token: str


@pytest.fixture
def cast(db) -> Cast:
    return build_cast()


def build_cast() -> Cast:
    """The cast's rows (the `cast` fixture; tests/security builds it once per module)."""
    year9 = UserGroupFactory(name="Year 9")
    year10 = UserGroupFactory(name="Year 10")
    pupil9 = PersonFactory(username="SCHOOL\\y9pupil", display_name="Nine Pupil")
    pupil10 = PersonFactory(username="SCHOOL\\y10pupil", display_name="Ten Pupil")
    MembershipFactory(group=year9, person=pupil9)
    MembershipFactory(group=year10, person=pupil10)
    lead = StaffUserFactory(username="lead")
    for group in (year9, year10):
        StaffAccessFactory(user=lead, group=group, is_confide_viewer=True)
    teacher9 = StaffAccessFactory(user=StaffUserFactory(username="teacher9"), group=year9).user
    teacher10 = StaffAccessFactory(user=StaffUserFactory(username="teacher10"), group=year10).user
    confide_viewer = StaffUserFactory(username="confide")
    for group in (year9, year10):
        StaffAccessFactory(
            user=confide_viewer,
            group=group,
            can_view_captures=False,
            can_manage_captures=False,
            can_view_recordings=False,
            is_confide_viewer=True,
        )
    outsider = StaffUserFactory(username="outsider")
    admin = StaffUserFactory(username="admin", is_staff=True, is_superuser=True)
    device, token = enrolled_device(hostname="Y9-PC01")
    return Cast(
        year9=year9,
        year10=year10,
        pupil9=pupil9,
        pupil10=pupil10,
        device9=device,
        device10=DeviceFactory(hostname="Y10-PC01"),
        lead=lead,
        teacher9=teacher9,
        teacher10=teacher10,
        confide_viewer=confide_viewer,
        outsider=outsider,
        admin=admin,
        device=device,
        device_token=token,
    )


@pytest.fixture
def device_client(db):
    """An API client authenticated as a freshly enrolled device; `.device` is the device."""
    device, token = enrolled_device()
    client = device_api_client(token)
    client.device = device
    client.token = token
    return client
