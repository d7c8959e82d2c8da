"""The captures pages: the filtered list with keyset pages, one capture with its workflow, and its files."""

import html
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus
from safeguard.groups.models import Membership
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Category, Severity
from tests.factories import (
    CaptureFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    MembershipFactory,
    PersonFactory,
    RecordingFactory,
    StaffAccessFactory,
    UserGroupFactory,
    png_bytes,
)

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def next_link(page_html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">', page_html)
    return html.unescape(match.group(1)) if match else None


def listed_uuids(page_html: str) -> list[str]:
    """The captures a list page shows, in order (each row links its capture once by its time)."""
    return re.findall(r'<td><a href="/console/captures/([0-9a-f-]{36})/"><time', page_html)


@pytest.fixture
def capture9(cast):
    return CaptureFactory(person=cast.pupil9, device=cast.device9)


@pytest.fixture
def capture10(cast):
    return CaptureFactory(person=cast.pupil10, device=cast.device10, keyword_text="year ten secret")


def with_preview(capture: Capture) -> Capture:
    capture.screenshot_preview.save("preview.webp", ContentFile(png_bytes(48, 32)), save=True)
    return capture


# --- the list ------------------------------------------------------------------------------------


def test_the_list_needs_a_login(client):
    response = client.get("/console/captures/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_list_shows_what_a_row_needs(cast, capture9):
    capture9.assignee = cast.lead
    capture9.save()
    with_preview(capture9)

    page = client_for(cast.teacher9).get("/console/captures/").content.decode()

    assert listed_uuids(page) == [str(capture9.uuid)]
    for text in ("Nine Pupil", "Y9-PC01", capture9.keyword_text, capture9.policy.name, "High", "New", "lead"):
        assert text in page
    # Severity and status are text (with an icon), never colour alone.
    assert re.search(r'class="badge sev-high"><span aria-hidden="true">&#9650;</span> High</span>', page)
    assert f'src="/console/captures/{capture9.uuid}/preview"' in page
    assert "1 capture matches." in page


def test_teacher9_cannot_see_year10_in_the_list_its_total_or_its_filters(cast, capture9, capture10):
    page = client_for(cast.teacher9).get("/console/captures/").content.decode()

    assert listed_uuids(page) == [str(capture9.uuid)]
    assert "1 capture matches." in page
    for leak in (
        "Ten Pupil",
        "y10pupil",
        "Y10-PC01",
        "year ten secret",
        str(capture10.uuid),
        "Year 10",
        str(cast.pupil10.uuid),
        str(cast.year10.uuid),
    ):
        assert leak not in page, leak


def test_a_year10_filter_is_refused_not_obeyed(cast, capture9, capture10):
    client = client_for(cast.teacher9)

    by_person = client.get(f"/console/captures/?person={cast.pupil10.uuid}").content.decode()
    by_group = client.get(f"/console/captures/?group={cast.year10.uuid}").content.decode()

    assert "Ignored the person filter" in by_person and listed_uuids(by_person) == [str(capture9.uuid)]
    assert "Ignored the group filter" in by_group and listed_uuids(by_group) == [str(capture9.uuid)]
    assert "year ten secret" not in by_person + by_group


@pytest.mark.parametrize(
    "query, message",
    [
        ("person=not-a-uuid", "Ignored the person filter"),
        ("policy=12", "Ignored the policy filter"),
        ("from=yesterday", "Ignored the from filter"),
        ("to=2024-02-31", "Ignored the to filter"),
        ("severity=catastrophic", "Ignored the severity filter"),
        ("status=%00", "Ignored the status filter"),
        ("group=%27%3B--", "Ignored the group filter"),
        ("after=not-a-cursor", "Ignored the page position"),
        ("after=" + "A" * 500, "Ignored the page position"),
        ("from=2024-05-02&to=2024-05-01", "The end is before the start"),
    ],
)
def test_bad_filters_are_ignored_with_a_message(cast, capture9, query, message):
    response = client_for(cast.lead).get(f"/console/captures/?{query}")

    assert response.status_code == 200
    assert message in response.content.decode()
    assert str(capture9.uuid) in response.content.decode()


def test_filters_by_status_severity_policy_and_person(cast):
    policy = KeywordPolicyFactory(name="Bullying")
    target = CaptureFactory(
        person=cast.pupil9,
        keyword=KeywordFactory(policy=policy, severity=Severity.SEVERE),
        status=CaptureStatus.ESCALATED,
    )
    other_person = PersonFactory()
    MembershipFactory(group=cast.year9, person=other_person)
    CaptureFactory(person=other_person, keyword=target.keyword, status=CaptureStatus.ESCALATED)  # other person
    CaptureFactory(person=cast.pupil9, keyword=target.keyword, status=CaptureStatus.NEW)  # other status
    CaptureFactory(person=cast.pupil9, status=CaptureStatus.ESCALATED)  # other policy and severity
    client = client_for(cast.lead)

    page = client.get(
        f"/console/captures/?status=escalated&severity=severe&policy={policy.uuid}&person={cast.pupil9.uuid}"
    ).content.decode()

    assert listed_uuids(page) == [str(target.uuid)]
    assert "1 capture matches." in page


def test_the_group_filter_includes_subgroups_and_device_groups(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    in_form = PersonFactory()
    MembershipFactory(group=form9a, person=in_form)
    in_form_capture = CaptureFactory(person=in_form)
    year9_capture = CaptureFactory(person=cast.pupil9)
    CaptureFactory(person=cast.pupil10)
    from tests.factories import DeviceGroupFactory

    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device10)
    StaffAccessFactory(user=cast.lead, group=suite)
    on_suite = CaptureFactory(person=cast.pupil10, device=cast.device10)
    client = client_for(cast.lead)

    year9 = listed_uuids(client.get(f"/console/captures/?group={cast.year9.uuid}").content.decode())
    form = listed_uuids(client.get(f"/console/captures/?group={form9a.uuid}").content.decode())
    room = listed_uuids(client.get(f"/console/captures/?group={suite.uuid}").content.decode())

    assert set(year9) == {str(in_form_capture.uuid), str(year9_capture.uuid)}
    assert form == [str(in_form_capture.uuid)]
    assert room == [str(on_suite.uuid)]


def test_the_date_filter_is_inclusive_of_the_last_day(cast):
    day = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=10)
    inside = [
        CaptureFactory(person=cast.pupil9, occurred_at=day.replace(hour=0, minute=0)),
        CaptureFactory(person=cast.pupil9, occurred_at=day + timedelta(days=1, hours=11, minutes=59)),
    ]
    CaptureFactory(person=cast.pupil9, occurred_at=day - timedelta(days=1))
    CaptureFactory(person=cast.pupil9, occurred_at=day.replace(hour=0, minute=0) + timedelta(days=2))

    page = (
        client_for(cast.lead)
        .get(f"/console/captures/?from={day.date().isoformat()}&to={(day + timedelta(days=1)).date().isoformat()}")
        .content.decode()
    )

    assert listed_uuids(page) == [str(inside[1].uuid), str(inside[0].uuid)]


def test_keyset_pages_return_every_capture_once_newest_first(cast):
    base = timezone.now() - timedelta(days=1)
    # 120 captures with many identical times: the id must break the ties.
    captures = [
        CaptureFactory(person=cast.pupil9, occurred_at=base + timedelta(minutes=index // 3)) for index in range(120)
    ]
    expected = [str(c.uuid) for c in sorted(captures, key=lambda c: (c.occurred_at, c.pk), reverse=True)]
    client = client_for(cast.lead)

    seen: list[str] = []
    url: str | None = "/console/captures/"
    pages = 0
    while url:
        page = client.get(url).content.decode()
        assert "OFFSET" not in page
        seen += listed_uuids(page)
        url = next_link(page)
        pages += 1

    assert pages == 3
    assert seen == expected


def test_oldest_first_pages_too(cast):
    base = timezone.now() - timedelta(days=1)
    captures = [CaptureFactory(person=cast.pupil9, occurred_at=base + timedelta(seconds=i // 2)) for i in range(60)]
    client = client_for(cast.lead)

    first = client.get("/console/captures/?order=asc").content.decode()
    second = client.get(next_link(first)).content.decode()

    assert listed_uuids(first) + listed_uuids(second) == [
        str(c.uuid) for c in sorted(captures, key=lambda c: (c.occurred_at, c.pk))
    ]
    assert next_link(second) is None


def test_the_list_costs_the_same_queries_for_more_rows(cast, django_assert_max_num_queries):
    client = client_for(cast.lead)
    for _ in range(3):
        RecordingFactory(capture=with_preview(CaptureFactory(person=cast.pupil9)))
    client.get("/console/captures/")  # warm the session

    with django_assert_max_num_queries(14) as few:
        client.get("/console/captures/")
    for _ in range(40):
        capture = CaptureFactory(person=cast.pupil9 if _ % 2 else cast.pupil10, assignee=cast.lead)
        RecordingFactory(capture=capture)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/console/captures/")
    assert len(listed_uuids(response.content.decode())) == 43


# --- one capture -------------------------------------------------------------------------------


def test_the_capture_page_shows_the_evidence_and_the_workflow(cast, capture9):
    capture9.url = "https://example.test/search?q=hurt"
    capture9.save()

    response = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert f'src="/console/captures/{capture9.uuid}/screenshot"' in page
    assert capture9.context in page and capture9.window_title in page and "chrome.exe" in page
    # The URL is text with a copy button, never a live link.
    assert 'href="https://example.test' not in page
    assert '<code class="url-text" id="capture-url">https://example.test/search?q=hurt</code>' in page
    assert 'data-copy="capture-url"' in page
    # A copyable absolute link for colleagues.
    assert f'value="http://testserver/console/captures/{capture9.uuid}/"' in page
    for action in ("/status", "/assign", "/notes", "/move", "/pdf"):
        assert f"/console/captures/{capture9.uuid}{action}" in page
    assert f"/console/logs/?tab=timeline&amp;person={cast.pupil9.uuid}&amp;around={capture9.uuid}" in page
    assert "is-blurred" not in page


def test_hostile_capture_text_is_escaped_everywhere(cast):
    capture = CaptureFactory(
        person=cast.pupil9,
        context=HOSTILE,
        window_title=HOSTILE,
        application=HOSTILE,
        url=f"javascript:alert(1)//{HOSTILE}",
        keyword_text=HOSTILE,
    )
    client = client_for(cast.lead)
    client.post(f"/console/captures/{capture.uuid}/notes", {"text": HOSTILE})

    for url in (f"/console/captures/{capture.uuid}/", "/console/captures/", "/console/logs/?tab=timeline"):
        page = client.get(url).content.decode()
        assert HOSTILE not in page, url
        assert ESCAPED in page, url
    assert 'href="javascript:' not in client.get(f"/console/captures/{capture.uuid}/").content.decode()


def test_pages_have_no_inline_script_style_or_handlers(cast, capture9):
    RecordingFactory(capture=capture9)
    client = client_for(cast.lead)

    for url in (f"/console/captures/{capture9.uuid}/", "/console/captures/", "/console/logs/?tab=timeline"):
        page = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), url
        assert not re.search(r"\sstyle=", page), url
        assert not re.search(r"\son[a-z]+=", page), url
        assert "<style" not in page, url


@pytest.mark.parametrize(
    "category, illegal", [(Category.ADULT_CONTENT, False), (Category.GROOMING, False), (Category.OTHER, True)]
)
def test_graphic_screenshots_are_blurred_until_clicked(cast, category, illegal):
    policy = KeywordPolicyFactory(category=category, is_illegal_content=illegal)
    capture = with_preview(CaptureFactory(person=cast.pupil9, keyword=KeywordFactory(policy=policy)))
    client = client_for(cast.lead)

    page = client.get(f"/console/captures/{capture.uuid}/").content.decode()
    listing = client.get("/console/captures/").content.decode()

    assert 'class="shot is-blurred"' in page and "data-reveal" in page
    # The full image is not fetched (nor its viewing audited) until staff choose to see it.
    assert f'data-src="/console/captures/{capture.uuid}/screenshot"' in page
    assert f'src="/console/captures/{capture.uuid}/screenshot"' not in page.replace("data-src=", "")
    assert "preview-link is-blurred" in listing


def test_the_recording_plays_in_the_page_when_the_viewer_may_watch_it(cast, capture9):
    recording = RecordingFactory(capture=capture9)
    no_recordings = StaffAccessFactory(group=cast.year9, can_view_recordings=False).user

    page = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/").content.decode()
    without = client_for(no_recordings).get(f"/console/captures/{capture9.uuid}/").content.decode()

    assert (
        f'<video class="capture-video" controls preload="metadata" src="/console/recordings/{recording.uuid}/video"'
        in page
    )
    assert "<video" not in without


def test_a_capture_outside_the_teachers_groups_is_404(cast, capture10):
    assert client_for(cast.teacher9).get(f"/console/captures/{capture10.uuid}/").status_code == 404
    assert client_for(cast.teacher9).get("/console/captures/00000000-0000-0000-0000-000000000000/").status_code == 404


# --- the workflow ------------------------------------------------------------------------------


def test_changing_the_status_from_the_page(cast, capture9):
    response = client_for(cast.teacher9).post(f"/console/captures/{capture9.uuid}/status", {"status": "escalated"})

    assert response.status_code == 302
    assert response["Location"] == f"/console/captures/{capture9.uuid}/#workflow"
    assert Capture.objects.get(pk=capture9.pk).status == CaptureStatus.ESCALATED
    entry = AuditEntry.objects.get(action="capture.status_changed")
    assert entry.actor == cast.teacher9
    page = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/").content.decode()
    assert "Status changed from New to Escalated" in page  # the history


def test_new_is_not_offered_and_cannot_be_posted(cast, capture9):
    client = client_for(cast.lead)
    client.post(f"/console/captures/{capture9.uuid}/status", {"status": "under_review"})

    response = client.post(f"/console/captures/{capture9.uuid}/status", {"status": "new"}, follow=True)

    assert Capture.objects.get(pk=capture9.pk).status == CaptureStatus.UNDER_REVIEW
    assert 'value="new"' not in response.content.decode()
    assert "Select a valid choice" in response.content.decode()


def test_assigning_from_the_page(cast, capture9):
    client = client_for(cast.lead)

    page = client.get(f"/console/captures/{capture9.uuid}/").content.decode()
    response = client.post(f"/console/captures/{capture9.uuid}/assign", {"assignee": cast.teacher9.pk}, follow=True)

    assert f'<option value="{cast.teacher9.pk}">teacher9</option>' in page
    assert f'value="{cast.teacher10.pk}"' not in page  # cannot manage a Year 9 pupil
    assert Capture.objects.get(pk=capture9.pk).assignee == cast.teacher9
    assert "Assigned to teacher9." in response.content.decode()


def test_a_capture_cannot_be_assigned_to_someone_outside_its_groups(cast, capture9):
    client_for(cast.lead).post(f"/console/captures/{capture9.uuid}/assign", {"assignee": cast.teacher10.pk})

    assert Capture.objects.get(pk=capture9.pk).assignee is None
    assert not AuditEntry.objects.filter(action="capture.assigned").exists()


def test_adding_a_note_from_the_page(cast, capture9):
    response = client_for(cast.teacher9).post(
        f"/console/captures/{capture9.uuid}/notes", {"text": "Spoke to the pupil."}, follow=True
    )

    assert CaptureNote.objects.get().text == "Spoke to the pupil."
    assert "Note added." in response.content.decode()
    assert "Spoke to the pupil." in response.content.decode()


def test_an_empty_note_is_refused_with_a_message(cast, capture9):
    response = client_for(cast.teacher9).post(f"/console/captures/{capture9.uuid}/notes", {"text": "  "}, follow=True)

    assert response.status_code == 200
    assert not CaptureNote.objects.exists()
    assert "This field is required." in response.content.decode()


def test_moving_the_person_to_a_group_from_the_page(cast, capture9):
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True)
    StaffAccessFactory(user=cast.lead, group=watch)

    response = client_for(cast.lead).post(f"/console/captures/{capture9.uuid}/move", {"group": str(watch.uuid)})

    assert response.status_code == 302
    assert Membership.objects.filter(group=watch, person=cast.pupil9).exists()
    assert Membership.objects.filter(group=cast.year9, person=cast.pupil9).exists()
    assert AuditEntry.objects.filter(action="person.moved_to_group").count() == 1


def test_a_teacher_cannot_move_a_pupil_into_a_group_they_do_not_see(cast, capture9):
    client_for(cast.teacher9).post(f"/console/captures/{capture9.uuid}/move", {"group": str(cast.year10.uuid)})

    assert not Membership.objects.filter(group=cast.year10, person=cast.pupil9).exists()


def test_staff_who_may_only_view_see_no_buttons_and_their_posts_are_404(cast, capture9):
    viewer = StaffAccessFactory(group=cast.year9, can_manage_captures=False).user
    client = client_for(viewer)

    page = client.get(f"/console/captures/{capture9.uuid}/").content.decode()
    responses = [
        client.post(f"/console/captures/{capture9.uuid}/status", {"status": "escalated"}),
        client.post(f"/console/captures/{capture9.uuid}/assign", {"assignee": viewer.pk}),
        client.post(f"/console/captures/{capture9.uuid}/notes", {"text": "hello"}),
        client.post(f"/console/captures/{capture9.uuid}/move", {"group": str(cast.year9.uuid)}),
    ]

    assert "You can read this capture but not change it." in page
    for action in ("/status", "/assign", "/notes", "/move"):
        assert f"{capture9.uuid}{action}" not in page
    assert [response.status_code for response in responses] == [404, 404, 404, 404]
    assert Capture.objects.get(pk=capture9.pk).status == CaptureStatus.NEW
    assert not CaptureNote.objects.exists() and not AuditEntry.objects.exists()


def test_the_workflow_urls_refuse_get(cast, capture9):
    client = client_for(cast.lead)
    for action in ("status", "assign", "notes", "move"):
        assert client.get(f"/console/captures/{capture9.uuid}/{action}").status_code == 405


# --- files -------------------------------------------------------------------------------------


def test_the_screenshot_is_served_privately_and_its_viewing_audited(cast, capture9):
    response = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/screenshot")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    entry = AuditEntry.objects.get(action="capture.screenshot_viewed")
    assert entry.actor == cast.teacher9 and entry.target_id == str(capture9.uuid)


def test_the_preview_is_served_without_an_audit_row(cast, capture9):
    with_preview(capture9)

    response = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/preview")

    assert response.status_code == 200
    assert not AuditEntry.objects.exists()


def test_a_capture_without_a_preview_answers_404_for_it(cast, capture9):
    assert client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/preview").status_code == 404


def test_the_pdf_downloads_and_is_audited(cast, capture9):
    response = client_for(cast.teacher9).get(f"/console/captures/{capture9.uuid}/pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="capture-')
    assert "no-store" in response["Cache-Control"]
    assert response.content.startswith(b"%PDF")
    assert AuditEntry.objects.get(action="capture.exported").actor == cast.teacher9


# --- teacher9 cannot see Year 10 (every URL of these pages) -----------------------------------------


@pytest.mark.parametrize(
    "method, suffix, data",
    [
        ("get", "", None),
        ("get", "screenshot", None),
        ("get", "preview", None),
        ("get", "pdf", None),
        ("post", "status", {"status": "escalated"}),
        ("post", "assign", {"assignee": ""}),
        ("post", "notes", {"text": "nosy"}),
        ("post", "move", {"group": "__year9__"}),
    ],
)
def test_teacher9_gets_404_for_every_url_of_a_year10_capture(cast, capture10, method, suffix, data):
    with_preview(capture10)
    RecordingFactory(capture=capture10)
    if data and data.get("group") == "__year9__":
        data = {"group": str(cast.year9.uuid)}
    client = client_for(cast.teacher9)

    response = getattr(client, method)(f"/console/captures/{capture10.uuid}/{suffix}", data or {})

    assert response.status_code == 404
    assert b"Ten Pupil" not in response.content and b"year ten secret" not in response.content
    capture10.refresh_from_db()
    assert capture10.status == CaptureStatus.NEW
    assert not AuditEntry.objects.exists()
    assert not CaptureNote.objects.exists()
    assert not Membership.objects.filter(group=cast.year9, person=cast.pupil10).exists()
