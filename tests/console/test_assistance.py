"""Assistance requests: a live notification in the console frame for staff who see the pupil, and acknowledge."""

import pytest
from django.test import Client

from safeguard.logs.models import AuditEntry
from tests.factories import AssistanceRequestFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_open_requests_of_visible_pupils_appear_in_the_notification(cast):
    request9 = AssistanceRequestFactory(person=cast.pupil9, device=cast.device9, message="I need help")

    html = client_for(cast.teacher9).get("/console/assistance/").content.decode()

    assert "Assistance requested" in html and "Nine Pupil" in html and "I need help" in html
    assert f'hx-post="/console/assistance/{request9.uuid}/acknowledge"' in html
    assert "<html" not in html  # a partial


def test_no_open_requests_render_nothing(cast):
    assert client_for(cast.teacher9).get("/console/assistance/").content.decode().strip() == ""


def test_acknowledging_marks_it_audits_and_removes_it(cast):
    request9 = AssistanceRequestFactory(person=cast.pupil9, device=cast.device9)
    client = client_for(cast.teacher9)

    response = client.post(f"/console/assistance/{request9.uuid}/acknowledge", headers={"HX-Request": "true"})

    assert response.status_code == 200 and "Assistance requested" not in response.content.decode()
    request9.refresh_from_db()
    assert request9.acknowledged_by == cast.teacher9 and request9.acknowledged_at is not None
    entry = AuditEntry.objects.get(action="assistance.acknowledged")
    assert entry.actor == cast.teacher9 and entry.target_id == str(request9.uuid)
    assert "Assistance requested" not in client.get("/console/assistance/").content.decode()


def test_a_second_acknowledgement_changes_nothing(cast):
    request9 = AssistanceRequestFactory(person=cast.pupil9, device=cast.device9)
    client_for(cast.teacher9).post(f"/console/assistance/{request9.uuid}/acknowledge")

    response = client_for(cast.lead).post(f"/console/assistance/{request9.uuid}/acknowledge", {"next": "/console/"})

    assert response.status_code == 302 and response["Location"] == "/console/"
    request9.refresh_from_db()
    assert request9.acknowledged_by == cast.teacher9
    assert AuditEntry.objects.filter(action="assistance.acknowledged").count() == 1


def test_acknowledge_never_redirects_off_site(cast):
    request9 = AssistanceRequestFactory(person=cast.pupil9, device=cast.device9)

    response = client_for(cast.teacher9).post(
        f"/console/assistance/{request9.uuid}/acknowledge", {"next": "https://evil.example/"}
    )

    assert response["Location"] == "/console/"


def test_teacher9_cannot_see_or_acknowledge_year10_requests(cast):
    request10 = AssistanceRequestFactory(person=cast.pupil10, device=cast.device10, message="year ten help")
    client = client_for(cast.teacher9)

    html = client.get("/console/assistance/").content.decode()
    assert "Ten Pupil" not in html and "year ten help" not in html and "more open request" not in html
    assert client.post(f"/console/assistance/{request10.uuid}/acknowledge").status_code == 404
    request10.refresh_from_db()
    assert request10.acknowledged_at is None


def test_only_five_are_listed_and_the_rest_counted(cast):
    for _ in range(7):
        AssistanceRequestFactory(person=cast.pupil9, device=cast.device9)

    html = client_for(cast.teacher9).get("/console/assistance/").content.decode()

    assert html.count("Assistance requested") == 5
    assert "and 2 more open requests" in html
