"""The captures admin: read-mostly pages, search and filters, and no link to any screenshot or video."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from safeguard.captures.models import ActionRuleFiring, Capture, CaptureNote, CaptureStatus, ExportJob, Recording
from tests.admin_pages import AdminPagesContract, admin_url
from tests.factories import (
    ActionRuleFiringFactory,
    CaptureFactory,
    CaptureNoteFactory,
    ExportJobFactory,
    KeywordFactory,
    PersonFactory,
    RecordingFactory,
)

# One saved object of each registered model. A newly registered model without an entry fails
# test_every_registered_model_is_covered.
OBJECT_MAKERS = {
    Capture: lambda: CaptureFactory(),
    CaptureNote: lambda: CaptureNoteFactory(),
    Recording: lambda: RecordingFactory(),
    ExportJob: lambda: ExportJobFactory(),
    ActionRuleFiring: lambda: ActionRuleFiringFactory(),
}
# Captures, notes and recordings come from agents and the console, never from an admin form;
# export jobs from the console's "Export PDF", action rule firings from the rules themselves.
ADD_DISABLED = {Capture, CaptureNote, Recording, ExportJob, ActionRuleFiring}


class TestAdminPages(AdminPagesContract):
    app_label = "captures"
    object_makers = OBJECT_MAKERS
    add_disabled = frozenset(ADD_DISABLED)


def test_capture_pages_never_link_the_screenshot(superuser_client, cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device)
    assert capture.screenshot.name
    for url in (admin_url(Capture, "changelist"), admin_url(Capture, "change", capture.pk)):
        page = superuser_client.get(url).content.decode()
        assert settings.MEDIA_URL not in page
        assert capture.screenshot.name not in page
        assert str(capture.uuid) + ".png" not in page


def test_recording_pages_never_link_the_video(superuser_client):
    recording = RecordingFactory()
    for url in (admin_url(Recording, "changelist"), admin_url(Recording, "change", recording.pk)):
        page = superuser_client.get(url).content.decode()
        assert settings.MEDIA_URL not in page
        assert recording.file.name not in page


def test_capture_status_cannot_be_changed_or_deleted_here(superuser_client, cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device)
    change_url = admin_url(Capture, "change", capture.pk)
    assert b'name="_save"' not in superuser_client.get(change_url).content
    assert superuser_client.post(change_url, {"status": CaptureStatus.RESOLVED_ACTION}).status_code == 403
    assert superuser_client.post(admin_url(Capture, "delete", capture.pk), {"post": "yes"}).status_code == 403
    capture.refresh_from_db()
    assert capture.status == CaptureStatus.NEW


def test_capture_search_by_person_username_and_keyword(superuser_client, cast):
    nine = CaptureFactory(person=cast.pupil9, device=cast.device, keyword=KeywordFactory(text="vape"))
    ten = CaptureFactory(person=cast.pupil10, device=cast.device10, keyword=KeywordFactory(text="knife"))
    url = admin_url(Capture, "changelist")
    assert list(superuser_client.get(url, {"q": "y10pupil"}).context["cl"].result_list) == [ten]
    assert list(superuser_client.get(url, {"q": "vape"}).context["cl"].result_list) == [nine]


def test_capture_filters_by_status_severity_and_policy(superuser_client):
    high = CaptureFactory(keyword=KeywordFactory(severity="high"))
    severe = CaptureFactory(keyword=KeywordFactory(severity="severe"), status=CaptureStatus.ESCALATED)
    url = admin_url(Capture, "changelist")

    def listed(params: dict) -> list:
        return list(superuser_client.get(url, params).context["cl"].result_list)

    assert listed({"status__exact": "escalated"}) == [severe]
    assert listed({"severity__exact": "high"}) == [high]
    assert listed({"policy__id__exact": severe.policy_id}) == [severe]


def test_capture_date_hierarchy(superuser_client):
    person = PersonFactory()
    today = CaptureFactory(person=person)
    CaptureFactory(person=person, occurred_at=timezone.now() - timedelta(days=400))
    local = timezone.localtime(today.occurred_at)
    response = superuser_client.get(
        admin_url(Capture, "changelist"),
        {"occurred_at__year": local.year, "occurred_at__month": local.month, "occurred_at__day": local.day},
    )
    assert list(response.context["cl"].result_list) == [today]


def test_recording_visibility_and_owner_can_be_changed(superuser_client, cast):
    recording = RecordingFactory()
    response = superuser_client.post(
        admin_url(Recording, "change", recording.pk), {"visibility": "private", "owner": cast.lead.pk}
    )
    assert response.status_code == 302
    recording.refresh_from_db()
    assert (recording.visibility, recording.owner) == ("private", cast.lead)


def test_recording_list_filters_by_visibility(superuser_client, cast):
    public = RecordingFactory()
    private = RecordingFactory(visibility="private", owner=cast.lead)
    url = admin_url(Recording, "changelist")
    assert list(superuser_client.get(url, {"visibility__exact": "private"}).context["cl"].result_list) == [private]
    assert list(superuser_client.get(url, {"visibility__exact": "public"}).context["cl"].result_list) == [public]


def test_admin_staff_see_only_the_captures_notes_recordings_and_events_of_their_groups(client, cast):
    """Django's view permission does not widen the access rule: the admin lists what the console would."""
    from django.contrib.auth.models import Permission

    from safeguard.logs.models import ActivityEvent
    from tests.factories import ActivityEventFactory, StaffAccessFactory, StaffUserFactory

    staff = StaffUserFactory(username="it.year9", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["captures", "logs"]))
    StaffAccessFactory(user=staff, group=cast.year9)
    mine, other = CaptureFactory(person=cast.pupil9), CaptureFactory(person=cast.pupil10)
    for capture in (mine, other):
        CaptureNoteFactory(capture=capture)
        RecordingFactory(capture=capture)
        ActivityEventFactory(person=capture.person, device=capture.device)
    client.force_login(staff)

    for model in (Capture, CaptureNote, Recording, ActivityEvent):
        listing = client.get(admin_url(model, "changelist"))
        assert listing.status_code == 200
        assert listing.context["cl"].result_count == 1, model
    assert client.get(admin_url(Capture, "change", mine.pk)).status_code == 200
    response = client.get(admin_url(Capture, "change", other.pk))
    assert response.status_code == 302 and response["Location"] == "/admin/"  # "not found"
