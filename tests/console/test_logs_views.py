"""The log viewer: Captures and Timeline tabs, filters, keyset pages across two tables, context, CSV."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.captures.selectors import LogFilters
from safeguard.console.views_logs import csv_safe
from safeguard.logs.models import ActivityEvent, AuditEntry, EventType
from safeguard.logs.selectors import event_summary, timeline_for_staff, timeline_iter_for_staff
from tests.factories import (
    ActivityEventFactory,
    CaptureFactory,
    DeviceGroupFactory,
    MembershipFactory,
    PersonFactory,
    RecordingFactory,
    StaffAccessFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db

UUID = r"[0-9a-f-]{36}"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def next_link(page_html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">', page_html)
    return html.unescape(match.group(1)) if match else None


def timeline_rows(page_html: str) -> list[tuple[str, str]]:
    """(kind, what) per timeline row, in order: kind is "capture" or the event type."""
    rows = []
    for row in re.findall(r'<tr class="timeline-row (.*?)</tr>', page_html, re.S):
        if row.startswith("is-capture"):
            rows.append(("capture", re.search(r'id="capture-(' + UUID + ')"', row).group(1)))
        else:
            rows.append(
                (re.search(r"type-(\w+)", row).group(1), re.search(r'class="summary">(.*?)</td>', row, re.S).group(1))
            )
    return rows


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def at(minutes: float):
    return timezone.now().replace(microsecond=0) - timedelta(days=1) + timedelta(minutes=minutes)


# --- the timeline ------------------------------------------------------------------------------


def test_the_timeline_interleaves_activity_and_highlighted_captures(cast):
    ActivityEventFactory(
        person=cast.pupil9, device=cast.device9, occurred_at=at(0), type=EventType.LOGON, data={"session": "console"}
    )
    ActivityEventFactory(
        person=cast.pupil9,
        device=cast.device9,
        occurred_at=at(1),
        type=EventType.WEBSITE,
        data={"url": "https://www.bbc.co.uk/bitesize", "title": "Bitesize", "browser": "chrome.exe"},
    )
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(2))
    recording = RecordingFactory(capture=capture)
    ActivityEventFactory(
        person=cast.pupil9,
        device=cast.device9,
        occurred_at=at(3),
        type=EventType.PRINT,
        data={"document": "Essay.docx", "printer": "Library", "pages": 3},
    )

    page = client_for(cast.teacher9).get("/console/logs/?tab=timeline&order=asc").content.decode()

    assert timeline_rows(page) == [
        ("logon", "Logged on (console)"),
        ("website", "Visited https://www.bbc.co.uk/bitesize (Bitesize) in chrome.exe"),
        ("capture", str(capture.uuid)),
        ("print", "Printed Essay.docx on Library (3 pages)"),
    ]
    capture_row = page.split(f'id="capture-{capture.uuid}"')[1].split("</tr>")[0]
    assert f"/console/captures/{capture.uuid}/screenshot" in capture_row
    assert f"/console/recordings/{recording.uuid}/" in capture_row
    assert f"/console/captures/{capture.uuid}/" in capture_row
    assert "Capture</strong>" in capture_row  # highlighted with text, not colour alone
    # Newest first by default.
    assert timeline_rows(client_for(cast.teacher9).get("/console/logs/?tab=timeline").content.decode())[0][0] == "print"


@pytest.mark.parametrize(
    "event_type, data, summary",
    [
        (
            EventType.WINDOW,
            {"title": "Untitled - Notepad", "application": "notepad.exe"},
            "Window: Untitled - Notepad (notepad.exe)",
        ),
        (
            EventType.APPLICATION,
            {"name": "notepad.exe", "action": "started", "path": "C:\\x.exe"},
            "Application started: notepad.exe (C:\\x.exe)",
        ),
        (EventType.PRINT, {"document": "a.pdf", "printer": "P1", "pages": 1}, "Printed a.pdf on P1 (1 page)"),
        (EventType.FILE_DELETED, {"path": "C:\\Users\\a\\notes.txt"}, "Deleted C:\\Users\\a\\notes.txt"),
        (EventType.LOGOFF, {}, "Logged off"),
        (EventType.WEBSITE, {"url": "https://a.test/"}, "Visited https://a.test/"),
        (EventType.WINDOW, {"title": None}, "Window: "),  # agents' data is never trusted to be complete
    ],
)
def test_each_event_type_reads_as_a_sentence(event_type, data, summary):
    assert event_summary(ActivityEventFactory.build(type=event_type, data=data)) == summary


def test_teacher9_sees_no_year10_activity_people_or_devices_in_the_logs(cast):
    ActivityEventFactory(person=cast.pupil9, device=cast.device9)
    ActivityEventFactory(
        person=cast.pupil10, device=cast.device10, data={"title": "year ten window", "application": "x"}
    )
    CaptureFactory(person=cast.pupil10, device=cast.device10, keyword_text="year ten secret")
    client = client_for(cast.teacher9)

    for url in ("/console/logs/", "/console/logs/?tab=timeline", "/console/logs/?tab=timeline&type=capture"):
        page = client.get(url).content.decode()
        for leak in ("Ten Pupil", "y10pupil", "Y10-PC01", "year ten", "Year 10", str(cast.pupil10.uuid)):
            assert leak not in page, (url, leak)
    for tab in ("captures", "timeline"):
        body = b"".join(client.get(f"/console/logs/?tab={tab}&format=csv").streaming_content).decode()
        assert "y10pupil" not in body and "year ten" not in body


def test_a_year10_person_or_device_filter_is_ignored_with_a_message(cast):
    ActivityEventFactory(person=cast.pupil9, device=cast.device9)
    ActivityEventFactory(person=cast.pupil10, device=cast.device10)
    client = client_for(cast.teacher9)

    by_person = client.get(f"/console/logs/?tab=timeline&person={cast.pupil10.uuid}").content.decode()
    by_device = client.get(f"/console/logs/?tab=timeline&device={cast.device10.uuid}").content.decode()

    assert "Ignored the person filter" in by_person and "Ignored the computer filter" in by_device
    assert "Ten Pupil" not in by_person + by_device
    assert len(timeline_rows(by_person)) == 1


@pytest.mark.parametrize(
    "query, message",
    [
        ("tab=timeline&person=xyz", "Ignored the person filter"),
        ("tab=timeline&device=1", "Ignored the computer filter"),
        ("tab=timeline&type=keystrokes", "Ignored the event type filter"),
        ("tab=timeline&from=2024-13-01", "Ignored the from filter"),
        ("tab=timeline&to=tomorrow", "Ignored the to filter"),
        ("tab=timeline&after=%FF%FE", "Ignored the page position"),
        ("tab=timeline&around=not-a-uuid", "that is not a capture id"),
        ("tab=timeline&around=00000000-0000-0000-0000-000000000000", "no such capture"),
        ("tab=timeline&group=zzz", "Ignored the group filter"),
        ("tab=sideways", "Unknown tab"),
        ("tab=timeline&order=sideways", "Ignored the order filter"),
    ],
)
def test_bad_log_filters_are_ignored_with_a_message_never_a_500(cast, query, message):
    ActivityEventFactory(person=cast.pupil9, device=cast.device9)

    response = client_for(cast.lead).get(f"/console/logs/?{query}")

    assert response.status_code == 200
    assert message in response.content.decode()


def test_filters_by_person_device_group_type_and_dates(cast):
    classmate = PersonFactory()
    MembershipFactory(group=cast.year9, person=classmate)
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device9)
    StaffAccessFactory(user=cast.lead, group=suite)
    other_device = cast.device10
    wanted = ActivityEventFactory(
        person=cast.pupil9,
        device=cast.device9,
        type=EventType.PRINT,
        occurred_at=at(0),
        data={"document": "wanted.docx", "printer": "P", "pages": 1},
    )
    ActivityEventFactory(person=cast.pupil9, device=cast.device9, type=EventType.WINDOW, occurred_at=at(0))
    ActivityEventFactory(person=cast.pupil9, device=other_device, type=EventType.PRINT, occurred_at=at(0))
    ActivityEventFactory(person=classmate, device=cast.device9, type=EventType.PRINT, occurred_at=at(0))
    ActivityEventFactory(person=cast.pupil9, device=cast.device9, type=EventType.PRINT, occurred_at=at(-3 * 24 * 60))
    day = timezone.localtime(at(0)).date().isoformat()
    client = client_for(cast.lead)

    page = client.get(
        f"/console/logs/?tab=timeline&person={cast.pupil9.uuid}&device={cast.device9.uuid}&type=print&from={day}&to={day}"
    ).content.decode()
    by_device_group = client.get(f"/console/logs/?tab=timeline&group={suite.uuid}&type=print").content.decode()

    assert timeline_rows(page) == [("print", "Printed wanted.docx on P (1 page)")]
    assert len(timeline_rows(by_device_group)) == 3  # everything printed on the suite's computer
    assert wanted.pk


def test_capture_filters_narrow_the_capture_rows_and_keep_the_activity(cast):
    ActivityEventFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(0))
    escalated = CaptureFactory(person=cast.pupil9, status=CaptureStatus.ESCALATED, occurred_at=at(1))
    CaptureFactory(person=cast.pupil9, status=CaptureStatus.NEW, occurred_at=at(2))
    client = client_for(cast.lead)

    mixed = timeline_rows(client.get("/console/logs/?tab=timeline&status=escalated").content.decode())
    only_captures = timeline_rows(client.get("/console/logs/?tab=timeline&type=capture").content.decode())

    assert mixed == [("capture", str(escalated.uuid)), ("window", "Window: Untitled - Notepad (notepad.exe)")]
    assert [kind for kind, _ in only_captures] == ["capture", "capture"]


def test_the_captures_tab_lists_captures_with_a_context_link(cast):
    capture = CaptureFactory(person=cast.pupil9)

    page = client_for(cast.teacher9).get("/console/logs/?tab=captures").content.decode()

    assert f"/console/captures/{capture.uuid}/" in page
    assert f"/console/logs/?tab=timeline&amp;person={cast.pupil9.uuid}&amp;around={capture.uuid}" in page
    assert re.search(r'aria-current="page">.{0,300} Captures</a>', page, re.S)


# --- context: 30 minutes either side -----------------------------------------------------------------


def test_context_opens_the_timeline_thirty_minutes_either_side_for_that_person(cast):
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(60))
    inside = [
        ActivityEventFactory(
            person=cast.pupil9,
            device=cast.device9,
            occurred_at=at(60 + minutes),
            data={"title": f"inside {minutes}", "application": "app"},
        )
        for minutes in (-29.9, -1, 0, 1, 29.9)
    ]
    for minutes in (-31, 31):
        ActivityEventFactory(
            person=cast.pupil9,
            device=cast.device9,
            occurred_at=at(60 + minutes),
            data={"title": f"outside {minutes}", "application": "app"},
        )
    classmate = PersonFactory()
    MembershipFactory(group=cast.year9, person=classmate)
    ActivityEventFactory(
        person=classmate, device=cast.device9, occurred_at=at(60), data={"title": "classmate", "application": "app"}
    )
    earlier_capture = CaptureFactory(person=cast.pupil9, occurred_at=at(45))

    page = (
        client_for(cast.teacher9)
        .get(f"/console/logs/?tab=timeline&person={cast.pupil9.uuid}&around={capture.uuid}")
        .content.decode()
    )

    rows = timeline_rows(page)
    titles = [what for kind, what in rows if kind == "window"]
    assert titles == [f"Window: inside {m} (app)" for m in ("-29.9", "-1", "0")] + [
        f"Window: inside {m} (app)" for m in ("1", "29.9")
    ]
    assert [what for kind, what in rows if kind == "capture"] == [str(earlier_capture.uuid), str(capture.uuid)]
    assert "outside" not in page and "classmate" not in page
    # In time order, with the capture it was opened from marked.
    assert re.search(r'class="timeline-row is-capture is-focus" id="capture-' + str(capture.uuid), page)
    assert "30 minutes either side of the capture" in page
    assert len(inside) == 5


def test_context_without_a_person_uses_the_captures_person(cast):
    capture = CaptureFactory(person=cast.pupil9, occurred_at=at(0))
    classmate = PersonFactory()
    MembershipFactory(group=cast.year9, person=classmate)
    ActivityEventFactory(person=classmate, occurred_at=at(1), data={"title": "classmate", "application": "a"})

    page = client_for(cast.teacher9).get(f"/console/logs/?tab=timeline&around={capture.uuid}").content.decode()

    assert "classmate" not in page
    assert timeline_rows(page) == [("capture", str(capture.uuid))]


def test_context_of_a_year10_capture_is_ignored_for_teacher9(cast):
    capture = CaptureFactory(person=cast.pupil10, occurred_at=at(0))
    ActivityEventFactory(person=cast.pupil10, occurred_at=at(1))

    page = client_for(cast.teacher9).get(f"/console/logs/?tab=timeline&around={capture.uuid}").content.decode()

    assert "no such capture among those you can see" in page
    assert str(capture.uuid) not in page.split("</form>", 1)[1]
    assert "Ten Pupil" not in page


# --- keyset paging across two tables ----------------------------------------------------------------


@pytest.fixture
def busy_day(cast):
    """250 rows over two tables with many exact ties in time, inside and across the tables."""
    events = [
        ActivityEvent(
            uuid=__import__("uuid").uuid4(),
            type=EventType.WINDOW,
            device=cast.device9,
            person=cast.pupil9,
            occurred_at=at(index // 4),
            data={"title": f"window {index}", "application": "app"},
        )
        for index in range(200)
    ]
    ActivityEvent.objects.bulk_create(events)
    captures = [
        CaptureFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(index // 2)) for index in range(50)
    ]
    return (
        [("event", event.pk, event.occurred_at) for event in ActivityEvent.objects.all()],
        [("capture", capture.pk, capture.occurred_at) for capture in captures],
    )


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
def test_paging_the_timeline_returns_every_row_exactly_once_in_order(cast, busy_day, descending, limit):
    events, captures = busy_day
    rank = {"event": 0, "capture": 1}
    expected = sorted(events + captures, key=lambda row: (row[2], rank[row[0]], row[1]), reverse=descending)

    seen = []
    cursor = None
    while True:
        page = timeline_for_staff(
            user=cast.lead, filters=LogFilters(), cursor=cursor, limit=limit, descending=descending
        )
        assert len(page.rows) <= limit
        seen += [(row.kind, row.pk, row.occurred_at) for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == expected
    assert len(seen) == 250
    streamed = timeline_iter_for_staff(user=cast.lead, filters=LogFilters(), descending=descending, batch=limit)
    assert [(row.kind, row.pk, row.occurred_at) for row in streamed] == expected


def test_following_next_page_links_shows_every_row_once(cast, busy_day):
    client = client_for(cast.lead)
    url = "/console/logs/?tab=timeline"
    rows: list = []
    pages = 0
    while url:
        page = client.get(url).content.decode()
        rows += timeline_rows(page)
        url = next_link(page)
        pages += 1

    assert pages == 3
    assert len(rows) == 250
    assert len(set(rows)) == 250  # every window title and capture id is distinct


def test_the_captures_tab_pages_by_keyset_too(cast):
    for index in range(130):
        CaptureFactory(person=cast.pupil9, occurred_at=at(index // 5))
    client = client_for(cast.lead)

    first = client.get("/console/logs/?tab=captures").content.decode()
    second = client.get(next_link(first)).content.decode()

    ids = re.findall(r'<td><a href="/console/captures/(' + UUID + ')/"><time', first + second)
    assert len(ids) == 130 == len(set(ids))
    assert next_link(second) is None
    assert "after=" in next_link(first) and "page=" not in next_link(first)


def test_a_timeline_page_costs_the_same_queries_with_more_rows(cast, django_assert_max_num_queries):
    client = client_for(cast.lead)
    ActivityEventFactory(person=cast.pupil9, device=cast.device9)
    RecordingFactory(capture=CaptureFactory(person=cast.pupil9, device=cast.device9))
    client.get("/console/logs/?tab=timeline")

    with django_assert_max_num_queries(16) as few:
        client.get("/console/logs/?tab=timeline")
    for index in range(60):
        ActivityEventFactory(
            person=cast.pupil9 if index % 2 else cast.pupil10,
            type=EventType.WEBSITE,
            data={"url": f"https://a.test/{index}"},
        )
        RecordingFactory(capture=CaptureFactory(person=cast.pupil9, assignee=cast.lead))
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/console/logs/?tab=timeline").content.decode()
    assert len(timeline_rows(page)) == 100
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/console/logs/?tab=captures")


# --- CSV -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, safe",
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (3, "3"),
    ],
)
def test_csv_cells_cannot_start_a_formula(value, safe):
    assert csv_safe(value) == safe


def test_the_timeline_csv_streams_the_whole_filtered_view_and_is_audited(cast):
    ActivityEventFactory(
        person=cast.pupil9,
        device=cast.device9,
        occurred_at=at(0),
        data={"title": "=cmd|' /C calc'!A0", "application": "excel.exe"},
    )
    capture = CaptureFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(1), keyword_text="-kys")
    for index in range(120):
        ActivityEventFactory(person=cast.pupil9, device=cast.device9, occurred_at=at(2 + index))

    response = client_for(cast.teacher9).get("/console/logs/?tab=timeline&order=asc&format=csv&after=garbage")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="safeguard-timeline-')
    rows = read_csv(response)
    assert rows[0] == ["Time", "Type", "Username", "Name", "Computer", "Summary", "Severity", "Status", "Id"]
    assert len(rows) == 1 + 122  # every row, not one page
    assert rows[1][1] == "Window" and rows[1][5] == "Window: =cmd|' /C calc'!A0 (excel.exe)"
    assert rows[2][1] == "Capture" and rows[2][8] == str(capture.uuid)
    entry = AuditEntry.objects.get(action="logs.exported")
    assert entry.actor == cast.teacher9 and entry.target_id == "timeline"
    assert entry.after == {"tab": "timeline", "order": "asc"}


def test_a_csv_cell_that_starts_a_formula_gets_a_quote(cast):
    CaptureFactory(person=cast.pupil9, window_title='=HYPERLINK("http://evil.test","click")', context="@SUM(1)")

    rows = read_csv(client_for(cast.lead).get("/console/logs/?tab=captures&format=csv"))

    header, row = rows
    assert row[header.index("Window title")] == '\'=HYPERLINK("http://evil.test","click")'
    assert row[header.index("Context")] == "'@SUM(1)"


def test_the_captures_csv_follows_the_filters(cast):
    wanted = CaptureFactory(person=cast.pupil9, status=CaptureStatus.ESCALATED)
    CaptureFactory(person=cast.pupil9, status=CaptureStatus.NEW)

    rows = read_csv(client_for(cast.lead).get("/console/logs/?tab=captures&status=escalated&format=csv"))

    assert [row[-1] for row in rows[1:]] == [str(wanted.uuid)]
    assert rows[1][rows[0].index("Status")] == "Escalated"


def test_the_group_filter_in_the_logs_includes_subgroups(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    in_form = PersonFactory()
    MembershipFactory(group=form9a, person=in_form)
    ActivityEventFactory(person=in_form, data={"title": "in form", "application": "a"})
    ActivityEventFactory(person=cast.pupil10, data={"title": "year 10", "application": "a"})

    page = client_for(cast.lead).get(f"/console/logs/?tab=timeline&group={cast.year9.uuid}").content.decode()

    assert [what for _, what in timeline_rows(page)] == ["Window: in form (a)"]
