import pytest

from tests.factories import CaptureFactory


@pytest.mark.django_db
def test_login_page_loads(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in to Safeguard" in response.content


@pytest.mark.django_db
def test_console_requires_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_factories_build_a_capture(cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device)
    assert capture.screenshot.name.startswith("screenshots/")
