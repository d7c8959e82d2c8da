"""The Confide admin: identity is read-only, and an anonymous report shows "anonymous" and nobody."""

from safeguard.confide.models import AssistanceRequest, ConfideNote, ConfideReport
from tests.admin_pages import AdminPagesContract, admin_url
from tests.factories import AssistanceRequestFactory, ConfideNoteFactory, ConfideReportFactory, PersonFactory

# One saved object of each registered model. A newly registered model without an entry fails
# test_every_registered_model_is_covered.
OBJECT_MAKERS = {
    ConfideReport: lambda: ConfideReportFactory(),
    ConfideNote: lambda: ConfideNoteFactory(),
    AssistanceRequest: lambda: AssistanceRequestFactory(),
}
# Reports and requests for help come from pupils' devices only.
ADD_DISABLED = {ConfideReport, AssistanceRequest}


class TestAdminPages(AdminPagesContract):
    app_label = "confide"
    object_makers = OBJECT_MAKERS
    add_disabled = frozenset(ADD_DISABLED)


def anonymous_report() -> ConfideReport:
    return ConfideReportFactory(is_anonymous=True, person=None, device=None, message="My stepdad hits me.")


def test_anonymous_report_shows_anonymous_and_no_person_or_device(superuser_client, cast):
    report = anonymous_report()
    named = ConfideReportFactory(person=cast.pupil10, device=cast.device10)

    listing = superuser_client.get(admin_url(ConfideReport, "changelist")).content.decode()
    assert "anonymous" in listing
    assert "Ten Pupil" in listing  # the named report shows its sender

    page = superuser_client.get(admin_url(ConfideReport, "change", report.pk)).content.decode()
    assert page.count(">anonymous<") == 2  # "from" and "device"
    for person in (cast.pupil9, cast.pupil10):
        assert person.username not in page and str(person) not in page
    for device in (cast.device9, cast.device10):
        assert device.hostname not in page
    assert named.device.hostname in superuser_client.get(admin_url(ConfideReport, "change", named.pk)).content.decode()


def test_report_identity_cannot_be_changed_but_handling_can(superuser_client, cast):
    report = anonymous_report()
    response = superuser_client.post(
        admin_url(ConfideReport, "change", report.pk),
        {
            "status": "in_progress",
            "handler": cast.lead.pk,
            "person": cast.pupil9.pk,
            "device": cast.device9.pk,
            "is_anonymous": "",
            "message": "rewritten",
            "notes-TOTAL_FORMS": "1",
            "notes-INITIAL_FORMS": "0",
            "notes-MIN_NUM_FORMS": "0",
            "notes-MAX_NUM_FORMS": "1000",
            "notes-0-text": "Called social care.",
        },
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert (report.status, report.handler) == ("in_progress", cast.lead)
    assert report.is_anonymous and report.person is None and report.device is None
    assert report.message == "My stepdad hits me."
    note = ConfideNote.objects.get(report=report)
    assert (note.text, note.author) == ("Called social care.", cast.admin)


def test_reports_cannot_be_deleted(superuser_client):
    report = ConfideReportFactory()
    assert superuser_client.post(admin_url(ConfideReport, "delete", report.pk), {"post": "yes"}).status_code == 403
    assert ConfideReport.objects.filter(pk=report.pk).exists()


def test_report_list_filters_and_search(superuser_client, cast):
    anonymous = anonymous_report()
    named = ConfideReportFactory(person=cast.pupil9, device=cast.device9, status="closed")
    url = admin_url(ConfideReport, "changelist")
    assert list(superuser_client.get(url, {"is_anonymous__exact": "1"}).context["cl"].result_list) == [anonymous]
    assert list(superuser_client.get(url, {"status__exact": "closed"}).context["cl"].result_list) == [named]
    assert list(superuser_client.get(url, {"q": "y9pupil"}).context["cl"].result_list) == [named]


def test_note_added_through_the_admin_records_its_author_and_then_stays_as_written(superuser_client, cast):
    report = ConfideReportFactory()
    response = superuser_client.post(admin_url(ConfideNote, "add"), {"report": report.pk, "text": "Spoke to tutor."})
    assert response.status_code == 302
    note = ConfideNote.objects.get(report=report)
    assert note.author == cast.admin
    assert superuser_client.post(admin_url(ConfideNote, "change", note.pk), {"text": "edited"}).status_code == 403
    note.refresh_from_db()
    assert note.text == "Spoke to tutor."


def test_assistance_requests_are_read_only(superuser_client):
    request_for_help = AssistanceRequestFactory(person=PersonFactory(username="SCHOOL\\helpme"))
    url = admin_url(AssistanceRequest, "change", request_for_help.pk)
    page = superuser_client.get(url).content.decode()
    assert "Can someone help me?" in page and str(request_for_help.person) in page
    assert superuser_client.post(url, {"message": "changed"}).status_code == 403
    request_for_help.refresh_from_db()
    assert request_for_help.message == "Can someone help me?"


def _admin_staff(username: str):
    """A staff account allowed into the admin with every Confide permission Django has."""
    from django.contrib.auth.models import Permission

    from tests.factories import StaffUserFactory

    user = StaffUserFactory(username=username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="confide"))
    return user


def test_admin_permissions_alone_do_not_open_confide(client, cast):
    """An IT account with "view Confide report" but no Confide right is refused, as in the console."""
    report = ConfideReportFactory(person=cast.pupil9, device=cast.device9)
    ConfideNoteFactory(report=report)
    client.force_login(_admin_staff("it.support"))

    assert client.get(admin_url(ConfideReport, "changelist")).status_code == 403
    assert client.get(admin_url(ConfideReport, "change", report.pk)).status_code == 403
    assert client.get(admin_url(ConfideNote, "changelist")).status_code == 403
    assert client.get(admin_url(ConfideNote, "add")).status_code == 403
    autocomplete = "/admin/autocomplete/?app_label=confide&model_name=confidenote&field_name=report&term="
    assert client.get(autocomplete).status_code == 403
    # The app index does not list them either.
    assert "Confide report" not in client.get("/admin/").content.decode()


def test_a_confide_viewer_sees_in_the_admin_only_the_reports_the_console_shows_them(client, cast):
    from tests.factories import StaffAccessFactory

    viewer = _admin_staff("head.of.year9")
    StaffAccessFactory(user=viewer, group=cast.year9, can_view_captures=False, is_confide_viewer=True)
    mine = ConfideReportFactory(person=cast.pupil9, device=cast.device9, message="From year nine")
    other = ConfideReportFactory(person=cast.pupil10, device=cast.device10, message="From year ten")
    anonymous_report()
    client.force_login(viewer)

    listing = client.get(admin_url(ConfideReport, "changelist"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 2  # Year 9's report and the anonymous one
    assert client.get(admin_url(ConfideReport, "change", mine.pk)).status_code == 200
    # Another group's report: the admin's "does not exist" (back to the index), not its contents.
    response = client.get(admin_url(ConfideReport, "change", other.pk))
    assert response.status_code == 302
    assert "From year ten" not in client.get(response["Location"]).content.decode()
