"""The Confide viewer (/console/confide/): only for Confide staff; anonymous reports show no identity anywhere."""

import uuid

import pytest
from django.test import Client
from django.utils import timezone

from safeguard.confide.models import ConfideReport
from safeguard.confide.services import confide_report_submit
from safeguard.groups.models import StaffAccess
from safeguard.logs.models import AuditEntry
from tests.factories import ConfideNoteFactory, ConfideReportFactory, DeviceFactory, PersonFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def anonymous_report(cast):
    """Sent anonymously by a Year 9 pupil from Y9-PC01: the agent knew who, the server must not show it."""
    sender = PersonFactory(username="SCHOOL\\secretsender", display_name="Secret Sender")
    report, _ = confide_report_submit(
        uuid=uuid.uuid4(),
        message="Someone is being bullied in the changing rooms.",
        about=ConfideReport.About.SOMEONE_ELSE,
        anonymous=True,
        occurred_at=timezone.now(),
        device=DeviceFactory(hostname="SENDER-PC07"),
        username=sender.username,
    )
    return report


def test_the_list_shows_reports_with_status_and_the_anonymous_as_anonymous(cast, anonymous_report):
    named = ConfideReportFactory(person=cast.pupil9, status=ConfideReport.Status.IN_PROGRESS, handler=cast.lead)

    html = client_for(cast.lead).get("/console/confide/").content.decode()

    assert f'href="/console/confide/{named.uuid}/"' in html and "Nine Pupil" in html and "In progress" in html
    assert f'href="/console/confide/{anonymous_report.uuid}/"' in html and "Anonymous" in html
    assert "2 reports" in html


def test_an_anonymous_report_shows_no_identity_anywhere(cast, anonymous_report):
    client = client_for(cast.lead)

    pages = [
        client.get("/console/confide/").content.decode(),
        client.get(f"/console/confide/{anonymous_report.uuid}/").content.decode(),
    ]

    for html in pages:
        assert "Anonymous" in html
        for identity in ("secretsender", "Secret Sender", "SENDER-PC07"):
            assert identity.lower() not in html.lower()
    detail = pages[1]
    assert "Someone is being bullied in the changing rooms." in detail
    assert "anonymous reports keep only the hour" in detail
    for entry in AuditEntry.objects.all():
        assert "secretsender" not in f"{entry.summary} {entry.before} {entry.after}".lower()


def test_named_reports_follow_the_confide_right_on_the_persons_group(cast, anonymous_report):
    nine = ConfideReportFactory(person=cast.pupil9)
    ten = ConfideReportFactory(person=cast.pupil10)
    year9_confide = StaffUserFactory(username="hoy9")
    StaffAccess.objects.create(user=year9_confide, group=cast.year9, is_confide_viewer=True)
    client = client_for(year9_confide)

    html = client.get("/console/confide/").content.decode()

    assert str(nine.uuid) in html and str(anonymous_report.uuid) in html
    assert str(ten.uuid) not in html and "Ten Pupil" not in html
    assert "2 reports" in html
    assert client.get(f"/console/confide/{ten.uuid}/").status_code == 404
    assert client.get(f"/console/confide/{nine.uuid}/").status_code == 200


def test_staff_without_the_confide_right_get_404_everywhere(cast, anonymous_report):
    report = ConfideReportFactory(person=cast.pupil9)
    client = client_for(cast.teacher9)  # sees Year 9's captures, but is no Confide viewer

    assert client.get("/console/confide/").status_code == 404
    assert client.get(f"/console/confide/{report.uuid}/").status_code == 404
    assert client.get(f"/console/confide/{anonymous_report.uuid}/").status_code == 404
    assert client.post(f"/console/confide/{report.uuid}/update", {"status": "closed"}).status_code == 404
    assert client.post(f"/console/confide/{report.uuid}/notes", {"text": "x"}).status_code == 404
    assert 'href="/console/confide/"' not in client.get("/console/").content.decode()
    report.refresh_from_db()
    assert report.status == ConfideReport.Status.NEW and not report.notes.exists()


def test_reading_a_report_is_audited(cast, anonymous_report):
    client_for(cast.confide_viewer).get(f"/console/confide/{anonymous_report.uuid}/")

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_id) == (
        cast.confide_viewer,
        "confide.viewed",
        str(anonymous_report.uuid),
    )


def test_changing_status_and_handler_is_audited(cast):
    report = ConfideReportFactory(person=cast.pupil9)
    client = client_for(cast.lead)

    response = client.post(f"/console/confide/{report.uuid}/update", {"status": "in_progress", "handler": cast.lead.pk})

    assert response.status_code == 302
    report.refresh_from_db()
    assert report.status == ConfideReport.Status.IN_PROGRESS and report.handler == cast.lead
    status = AuditEntry.objects.get(action="confide.status_changed")
    assert (status.before, status.after) == ({"status": "new"}, {"status": "in_progress"})
    handler = AuditEntry.objects.get(action="confide.handler_changed")
    assert handler.after == {"handler": cast.lead.pk} and handler.actor == cast.lead

    client.post(f"/console/confide/{report.uuid}/update", {"status": "closed", "handler": cast.lead.pk})
    report.refresh_from_db()
    assert report.status == ConfideReport.Status.CLOSED
    assert AuditEntry.objects.filter(action="confide.handler_changed").count() == 1  # unchanged: no row


def test_a_status_or_handler_outside_the_lists_is_refused(cast):
    report = ConfideReportFactory(person=cast.pupil9)
    client = client_for(cast.lead)

    client.post(f"/console/confide/{report.uuid}/update", {"status": "deleted"})
    client.post(f"/console/confide/{report.uuid}/update", {"handler": cast.teacher9.pk})  # not a Confide viewer

    report.refresh_from_db()
    assert report.status == ConfideReport.Status.NEW and report.handler is None
    assert not AuditEntry.objects.exclude(action="confide.viewed").exists()


def test_adding_a_note_is_audited_and_shown(cast):
    report = ConfideReportFactory(person=cast.pupil9)
    ConfideNoteFactory(report=report, author=cast.lead, text="Earlier note.")
    client = client_for(cast.confide_viewer)

    client.post(f"/console/confide/{report.uuid}/notes", {"text": "Met the pupil at lunch."})
    client.post(f"/console/confide/{report.uuid}/notes", {"text": "   "})  # empty: refused

    assert list(report.notes.values_list("text", flat=True)) == ["Earlier note.", "Met the pupil at lunch."]
    assert AuditEntry.objects.filter(action="confide.note_added", actor=cast.confide_viewer).count() == 1
    html = client.get(f"/console/confide/{report.uuid}/").content.decode()
    assert "Met the pupil at lunch." in html and "Earlier note." in html


def test_filter_by_status(cast, anonymous_report):
    closed = ConfideReportFactory(person=cast.pupil9, status=ConfideReport.Status.CLOSED)

    html = client_for(cast.lead).get("/console/confide/?status=closed").content.decode()

    assert str(closed.uuid) in html and str(anonymous_report.uuid) not in html


def test_teacher10s_confide_colleague_cannot_read_year9s_named_reports(cast):
    """The 'teacher9 cannot see Year 10' rule, for Confide: a Year 9 Confide viewer and Year 10's report."""
    ten = ConfideReportFactory(person=cast.pupil10, message="year ten disclosure")
    viewer9 = StaffUserFactory(username="confide9")
    StaffAccess.objects.create(user=viewer9, group=cast.year9, is_confide_viewer=True)
    client = client_for(viewer9)

    html = client.get("/console/confide/").content.decode()

    assert "year ten disclosure" not in html and "Ten Pupil" not in html and "0 reports" in html
    assert client.get(f"/console/confide/{ten.uuid}/").status_code == 404
    assert client.post(f"/console/confide/{ten.uuid}/update", {"status": "closed"}).status_code == 404
    assert client.post(f"/console/confide/{ten.uuid}/notes", {"text": "x"}).status_code == 404
