"""Console: the log viewer, with a Captures tab and a Timeline tab, and its CSV export.

Both tabs read through the access rule (safeguard.core.access via the selectors) with keyset
pages, so a page costs the same few queries at any depth. `?format=csv` streams the whole
filtered view (every page, read a keyset page at a time) and is audited "logs.exported".
"""

import csv
import dataclasses
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from safeguard.captures import selectors as capture_selectors
from safeguard.captures.models import Capture
from safeguard.captures.selectors import LogFilters
from safeguard.console.forms import LogFilterForm
from safeguard.console.views_captures import cursor_from, decorate_captures, frame_context, group_options, url_with
from safeguard.logs import selectors
from safeguard.logs.selectors import TimelineRow
from safeguard.logs.services import audit_record

ROWS_PER_PAGE = 100
CONTEXT_WINDOW = timedelta(minutes=30)
TABS = ("captures", "timeline")
# Spreadsheet programs run a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """The cell as text a spreadsheet shows as text: a leading formula character gets a `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a byte-order mark, so spreadsheet programs read the file as UTF-8
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


def _local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _capture_csv_rows(captures: Iterable[Capture]) -> Iterator[list]:
    for capture in captures:
        yield [
            _local(capture.occurred_at),
            capture.person.username,
            capture.person.display_name,
            capture.device.hostname,
            capture.keyword_text,
            capture.policy.name if capture.policy else "",
            capture.get_severity_display(),
            capture.get_status_display(),
            capture.assignee.get_username() if capture.assignee else "",
            capture.application,
            capture.window_title,
            capture.url,
            capture.context,
            str(capture.uuid),
        ]


CAPTURE_CSV_HEADER = [
    "Time",
    "Username",
    "Name",
    "Computer",
    "Keyword",
    "Policy",
    "Severity",
    "Status",
    "Assignee",
    "Application",
    "Window title",
    "URL",
    "Context",
    "Capture id",
]
TIMELINE_CSV_HEADER = ["Time", "Type", "Username", "Name", "Computer", "Summary", "Severity", "Status", "Id"]


def _timeline_csv_rows(rows: Iterable[TimelineRow]) -> Iterator[list]:
    for row in rows:
        obj = row.obj
        yield [
            _local(row.occurred_at),
            row.type_label,
            obj.person.username,
            obj.person.display_name,
            obj.device.hostname,
            row.summary,
            obj.get_severity_display() if row.is_capture else "",
            obj.get_status_display() if row.is_capture else "",
            str(obj.uuid),
        ]


def _export(request: HttpRequest, *, tab: str, filters: LogFilters, descending: bool) -> StreamingHttpResponse:
    user = request.user
    audit_record(
        action="logs.exported",
        actor=user,
        target_type="log_view",
        target_id=tab,
        summary=f"Exported the {tab} log view as CSV",
        after={key: value for key, value in request.GET.items() if key not in ("format", "after")},
    )
    if tab == "captures":
        captures = capture_selectors.capture_iter_for_staff(user=user, filters=filters, descending=descending)
        lines = _csv_lines(CAPTURE_CSV_HEADER, _capture_csv_rows(captures))
    else:
        rows = selectors.timeline_iter_for_staff(user=user, filters=filters, descending=descending)
        lines = _csv_lines(TIMELINE_CSV_HEADER, _timeline_csv_rows(rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="safeguard-{tab}-{stamp}.csv"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _around(request: HttpRequest, notes: list[str]) -> Capture | None:
    """The capture whose context (30 minutes either side) the timeline shows, if the link names one."""
    raw = request.GET.get("around", "").strip()
    if not raw:
        return None
    try:
        capture_uuid = uuid.UUID(raw)
    except ValueError:
        capture, note = None, "Ignored the capture to show the context of: that is not a capture id."
    else:
        capture = capture_selectors.captures_for_staff(user=request.user).filter(uuid=capture_uuid).first()
        note = "Ignored the capture to show the context of: no such capture among those you can see."
    if capture is None:
        notes.append(note)
        # Links made from this page (tabs, next page, CSV) leave the ignored parameter out.
        query = request.GET.copy()
        query.pop("around", None)
        request.GET = query
    return capture


@login_required
@require_GET
def log_viewer(request: HttpRequest) -> HttpResponse:
    notes: list[str] = []
    tab = request.GET.get("tab", "captures")
    if tab not in TABS:
        notes.append("Unknown tab: showing Captures.")
        tab = "captures"
    context = frame_context(request, area="logs", tab=tab, notes=notes)
    frame = context["frame"]
    around = _around(request, notes) if tab == "timeline" else None
    data = request.GET
    if around is not None and not data.get("order"):
        # The context of a capture reads in time order, like a story.
        data = data.copy()
        data["order"] = "asc"
    form = LogFilterForm(data, user=request.user, with_event_type=tab == "timeline")
    notes += form.ignored_messages()
    filters = form.to_filters(group_ids=frame.selected_ids)
    if around is not None:
        # The context of a capture: its person, 30 minutes either side.
        filters = dataclasses.replace(
            filters,
            start=around.occurred_at - CONTEXT_WINDOW,
            end=around.occurred_at + CONTEXT_WINDOW,
            person=filters.person or around.person,
        )
    descending = (form.cleaned_data.get("order") or "desc") == "desc"

    if request.GET.get("format") == "csv":
        return _export(request, tab=tab, filters=filters, descending=descending)

    cursor = cursor_from(request, notes)
    if tab == "captures":
        page = capture_selectors.capture_list_for_staff(
            user=request.user, filters=filters, cursor=cursor, limit=ROWS_PER_PAGE, descending=descending
        )
        decorate_captures(request, page.rows)
    else:
        page = selectors.timeline_for_staff(
            user=request.user, filters=filters, cursor=cursor, limit=ROWS_PER_PAGE, descending=descending
        )
        decorate_captures(request, [row.obj for row in page.rows if row.is_capture])
    return render(
        request,
        "console/logs.html",
        {
            **context,
            "tab": tab,
            "form": form,
            "notes": notes,
            "groups": group_options(frame),
            "rows": page.rows,
            "around": around,
            "window_start": filters.start if around else None,
            "window_end": filters.end if around else None,
            "next_url": url_with(request, after=page.next_cursor.encode()) if page.next_cursor else "",
            "first_url": url_with(request, after=None) if cursor else "",
            "csv_url": url_with(request, format="csv", after=None),
            "captures_tab_url": url_with(request, tab="captures", after=None, around=None, type=None),
            "timeline_tab_url": url_with(request, tab="timeline", after=None),
        },
    )
