"""Reads for the log viewer: activity events and the timeline, scoped to what a staff member sees.

The timeline interleaves two tables (activity events and captures) in one order. Both are read
with keyset pagination on (occurred_at, rank, id), where rank (0 events, 1 captures) breaks ties
between the tables at one instant, so a page costs two queries however deep it is and every row
appears exactly once while paging (see `keyset_after`).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from safeguard.captures.models import Capture
from safeguard.captures.selectors import (
    Cursor,
    LogFilters,
    Page,
    captures_for_staff,
    keyset_after,
)
from safeguard.core import access
from safeguard.logs.models import ActivityEvent, EventType

EVENT_RANK = 0
CAPTURE_RANK = 1
# The "event type" filter's extra choice: only the capture rows.
CAPTURE_TYPE = "capture"


def _text(data: dict, key: str) -> str:
    # Event data comes from agents: validated, but never trusted to have every key or a string.
    value = data.get(key) if isinstance(data, dict) else None
    return "" if value is None else str(value)


def event_summary(event: ActivityEvent) -> str:
    """One readable line for an activity event, e.g. "Visited https://… (Title) in chrome.exe"."""
    data = event.data or {}
    kind = event.type
    if kind == EventType.WINDOW:
        title, application = _text(data, "title"), _text(data, "application")
        return f"Window: {title}" + (f" ({application})" if application else "")
    if kind == EventType.WEBSITE:
        url, title, browser = _text(data, "url"), _text(data, "title"), _text(data, "browser")
        return f"Visited {url}" + (f" ({title})" if title else "") + (f" in {browser}" if browser else "")
    if kind == EventType.APPLICATION:
        action = _text(data, "action") or "started"
        return f"Application {action}: {_text(data, 'name')}" + (
            f" ({_text(data, 'path')})" if _text(data, "path") else ""
        )
    if kind == EventType.PRINT:
        pages = _text(data, "pages")
        return (
            f"Printed {_text(data, 'document')}"
            + (f" on {_text(data, 'printer')}" if _text(data, "printer") else "")
            + (f" ({pages} page{'' if pages == '1' else 's'})" if pages else "")
        )
    if kind == EventType.FILE_DELETED:
        return f"Deleted {_text(data, 'path')}"
    if kind == EventType.LOGON:
        return "Logged on" + (f" ({_text(data, 'session')})" if _text(data, "session") else "")
    if kind == EventType.LOGOFF:
        return "Logged off" + (f" ({_text(data, 'session')})" if _text(data, "session") else "")
    return event.get_type_display()


@dataclass(frozen=True)
class TimelineRow:
    """One row of the timeline: an activity event or a capture."""

    kind: str  # "event" or "capture"
    occurred_at: datetime
    rank: int
    pk: int
    obj: ActivityEvent | Capture

    @property
    def is_capture(self) -> bool:
        return self.kind == "capture"

    @property
    def summary(self) -> str:
        if isinstance(self.obj, Capture):
            return f"Capture: '{self.obj.keyword_text}' ({self.obj.get_severity_display()})"
        return event_summary(self.obj)

    @property
    def type_label(self) -> str:
        return "Capture" if isinstance(self.obj, Capture) else self.obj.get_type_display()

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.occurred_at, self.rank, self.pk)


def events_for_staff(*, user) -> QuerySet[ActivityEvent]:
    """Every activity event `user` may see (safeguard.core.access), with its person and device."""
    return access.scope_by_person_or_device(ActivityEvent.objects.all(), user).select_related("person", "device")


def _timeline_sources(*, user, filters: LogFilters) -> tuple[QuerySet | None, QuerySet | None]:
    """The event and capture querysets the filters ask for (None: that table is left out).

    The event type filter picks one kind of row ("capture" for captures only). Policy, severity
    and status describe captures, so they narrow the capture rows; events stay as their context.
    """
    events: QuerySet | None = filters.filter_common(events_for_staff(user=user))
    captures: QuerySet | None = filters.filter_captures(captures_for_staff(user=user))
    if filters.event_type == CAPTURE_TYPE:
        events = None
    elif filters.event_type:
        events = events.filter(type=filters.event_type)
        captures = None
    return events, captures


def timeline_for_staff(
    *, user, filters: LogFilters, cursor: Cursor | None = None, limit: int = 100, descending: bool = True
) -> Page:
    """A page of the merged timeline after `cursor`: at most two queries whatever the page's depth.

    Each table gives its first limit + 1 rows after the cursor; the merge keeps the first
    `limit`. Rows of either table beyond those cannot come before the page's last row, so no
    row is skipped, and the cursor (the last row's full key) means none is shown twice.
    """
    events, captures = _timeline_sources(user=user, filters=filters)
    order = ("-occurred_at", "-id") if descending else ("occurred_at", "id")
    rows: list[TimelineRow] = []
    if events is not None:
        window = events.filter(keyset_after(cursor=cursor, rank=EVENT_RANK, descending=descending))
        rows += [
            TimelineRow("event", event.occurred_at, EVENT_RANK, event.pk, event)
            for event in window.order_by(*order)[: limit + 1]
        ]
    if captures is not None:
        window = captures.filter(keyset_after(cursor=cursor, rank=CAPTURE_RANK, descending=descending))
        rows += [
            TimelineRow("capture", capture.occurred_at, CAPTURE_RANK, capture.pk, capture)
            for capture in window.order_by(*order)[: limit + 1]
        ]
    rows.sort(key=lambda row: row.key, reverse=descending)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = Cursor(occurred_at=last.occurred_at, pk=last.pk, rank=last.rank)
    return Page(rows=rows, next_cursor=next_cursor)


def timeline_iter_for_staff(
    *, user, filters: LogFilters, descending: bool = True, batch: int = 1000
) -> Iterator[TimelineRow]:
    """Every timeline row matching `filters`, in order, read a keyset page at a time (for exports)."""
    cursor = None
    while True:
        page = timeline_for_staff(user=user, filters=filters, cursor=cursor, limit=batch, descending=descending)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
