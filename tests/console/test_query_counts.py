"""No N+1 anywhere in the console: a page's query count does not grow with its rows.

Each console page that lists rows is rendered for the safeguarding lead with N rows and with 10xN
rows (all on one page); the number of queries must be the same. Every row has its own person,
computer, policy, assignee, recording... wherever the page shows them, so a related object read
per row would add queries. The numbers themselves are printed on failure, so a regression names
the page. docs/PERFORMANCE.md ("Log viewer at trust scale") has the counts at 10 million events.
"""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.logs.models import EventType
from tests.factories import (
    ActivityEventFactory,
    AlertRuleFactory,
    AssistanceRequestFactory,
    AuditEntryFactory,
    CaptureFactory,
    CaptureNoteFactory,
    ConfideNoteFactory,
    ConfideReportFactory,
    DeviceFactory,
    ExportJobFactory,
    KeywordFactory,
    MembershipFactory,
    PersonFactory,
    RecordingFactory,
    StaffAccessFactory,
    StaffUserFactory,
    png_bytes,
)

pytestmark = pytest.mark.django_db

N = 3


def _pupil(cast, i: int):
    """A new pupil of Year 9 (the lead sees Year 9 and Year 10)."""
    person = PersonFactory(display_name=f"Query Count {i}")
    MembershipFactory(group=cast.year9, person=person)
    return person


def _captures(cast, n: int, **fields) -> list:
    """n captures, each with its own pupil, computer, policy and keyword, and a staff assignee."""
    captures = []
    for i in range(n):
        person = _pupil(cast, i)
        capture = CaptureFactory(
            person=person,
            device=DeviceFactory(current_person=person),
            keyword=KeywordFactory(),
            assignee=StaffAccessFactory(group=cast.year9, can_manage_captures=True).user,
            occurred_at=timezone.now() - timedelta(minutes=i),
            status=[CaptureStatus.NEW, CaptureStatus.UNDER_REVIEW, CaptureStatus.ESCALATED][i % 3],
            **fields,
        )
        captures.append(capture)
    return captures


def users_page(cast, n):
    _captures(cast, n)
    return f"/console/?group={cast.year9.uuid}"


def thumbnails_page(cast, n):
    from django.core.files.base import ContentFile

    for i in range(n):
        device = DeviceFactory(current_person=_pupil(cast, i), thumbnail_updated_at=timezone.now())
        device.thumbnail.save(f"t{i}.png", ContentFile(png_bytes()), save=True)
    return "/console/thumbnails/"


def thumbnails_grid(cast, n):
    thumbnails_page(cast, n)
    return "/console/thumbnails/grid"


def captures_page(cast, n):
    for capture in _captures(cast, n):
        RecordingFactory(capture=capture)
        CaptureNoteFactory(capture=capture)
    return "/console/captures/"


def logs_captures_tab(cast, n):
    for capture in _captures(cast, n):
        RecordingFactory(capture=capture)
    return "/console/logs/?tab=captures"


def logs_timeline_tab(cast, n):
    captures = _captures(cast, n)
    for i, capture in enumerate(captures):
        RecordingFactory(capture=capture)
        for kind in (EventType.WINDOW, EventType.WEBSITE):
            ActivityEventFactory(
                person=capture.person,
                device=DeviceFactory(),
                type=kind,
                occurred_at=capture.occurred_at - timedelta(seconds=i + 1),
                data={"url": "https://example.org/"}
                if kind == EventType.WEBSITE
                else {"title": "t", "application": "a"},
            )
    return "/console/logs/?tab=timeline"


def logs_csv_export(cast, n):
    logs_timeline_tab(cast, n)
    return "/console/logs/?tab=timeline&format=csv"


def capture_detail(cast, n):
    """One capture with n notes and n history rows."""
    capture = _captures(cast, 1)[0]
    for i in range(n):
        CaptureNoteFactory(capture=capture, author=StaffUserFactory(username=f"noter{i}"))
        AuditEntryFactory(target_type="capture", target_id=str(capture.uuid), actor=StaffUserFactory())
    return f"/console/captures/{capture.uuid}/"


def recordings_page(cast, n):
    for capture in _captures(cast, n):
        RecordingFactory(capture=capture, owner=StaffUserFactory())
    return "/console/recordings/"


def confide_list(cast, n):
    for i in range(n):
        if i % 2:
            ConfideReportFactory(person=_pupil(cast, i), device=DeviceFactory())
        else:
            ConfideReportFactory(person=None, device=None, is_anonymous=True)
    return "/console/confide/"


def confide_detail(cast, n):
    report = ConfideReportFactory(person=cast.pupil9)
    for i in range(n):
        ConfideNoteFactory(report=report, author=StaffUserFactory(username=f"cnoter{i}"))
    return f"/console/confide/{report.uuid}/"


def assistance_page(cast, n):
    # The panel lists five and counts the rest (one query more once there are more than five):
    # start above five so both renders count the same way.
    for i in range(n + 5):
        AssistanceRequestFactory(person=_pupil(cast, i), device=DeviceFactory())
    return "/console/assistance/"


def insight_page(cast, n):
    _captures(cast, n)
    return "/console/insight/"


def exports_page(cast, n):
    for _ in range(n):
        ExportJobFactory(requested_by=cast.lead)
    return "/console/exports/"


def alerts_page(cast, n):
    for i in range(n):
        AlertRuleFactory(group=cast.year9 if i % 2 else cast.year10, name=f"Rule {i} of {n}", owner=cast.lead)
    return "/console/alerts/"


def device_detail(cast, n):
    person = _pupil(cast, 0)
    device = DeviceFactory(current_person=person)
    for i in range(n):
        ActivityEventFactory(
            person=_pupil(cast, i + 1), device=device, occurred_at=timezone.now() - timedelta(minutes=i)
        )
        CaptureFactory(person=person, device=device, keyword=KeywordFactory())
    return f"/console/devices/{device.uuid}/"


PAGES: list[Callable] = [
    users_page,
    thumbnails_page,
    thumbnails_grid,
    captures_page,
    logs_captures_tab,
    logs_timeline_tab,
    logs_csv_export,
    capture_detail,
    recordings_page,
    confide_list,
    confide_detail,
    assistance_page,
    insight_page,
    exports_page,
    alerts_page,
    device_detail,
]


def _render(cast, page: Callable, n: int) -> tuple[int, bytes]:
    """The page's query count and body with n more rows, rendered for the lead."""
    url = page(cast, n)
    client = Client()
    client.force_login(cast.lead)
    client.get(url)  # first request: session, caches, anything once per login
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, (url, response.status_code)
    return len(captured.captured_queries), body


@pytest.mark.parametrize("page", PAGES, ids=[page.__name__ for page in PAGES])
def test_query_count_does_not_grow_with_rows(cast, page):
    few, few_body = _render(cast, page, N)
    # More rows on top of the first ones: the page now lists 11xN of them.
    many, many_body = _render(cast, page, 10 * N)
    assert len(many_body) > len(few_body), f"{page.__name__}: the extra rows are not on the page"
    assert many == few, f"{page.__name__}: {few} queries with {N} rows, {many} with {11 * N}"
