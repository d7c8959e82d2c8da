"""PDF evidence exports of the log viewer, built in the background with progress (ExportJob).

A staff member presses "Export PDF" on the log viewer: `export_job_create` stores the filters
(as plain identifiers, not querysets) and enqueues captures.tasks.export_job_run after the commit.
The task claims the job, re-runs the query **with the requesting staff member's access as it is
then** (`export_filters_for`: every person, computer and group named in the filters is looked up
again among those they may see; captures and events come from the access-scoped selectors), and
renders the report: for each filtered capture its facts, its screenshot and the activity 30 minutes
either side, as the log viewer's "context" link shows it. Progress is written to the job row as it
goes, so the console's job page can show a bar. The PDF is stored under exports/ (never at a public
URL); only the requester may download it (captures.selectors / console views). Finishing is audited
"logs.exported_pdf"; each download "export.downloaded". Retention removes jobs and files after a
few days (safeguard.logs.retention).

Like the single-capture PDF (safeguard.captures.pdf), the report embeds images as data: URIs and
renders with the fetcher that refuses every other URL, and carries the same footer (who exported
it, when) on every page.
"""

import base64
import io
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from PIL import Image

from safeguard.captures.models import Capture, CaptureStatus, ExportJob, export_path
from safeguard.captures.selectors import LogFilters, captures_for_staff
from safeguard.core import access
from safeguard.groups.models import MonitoringGroup
from safeguard.policies.models import KeywordPolicy, Severity

logger = logging.getLogger(__name__)

CONTEXT_WINDOW = timedelta(minutes=30)
# A report this size renders in well under a minute; a bigger one is narrowed with the filters.
MAX_CAPTURES = 250
MAX_ROWS_PER_WINDOW = 200
# Screenshots are scaled down to this width in the report (the capture PDF keeps the original).
SCREENSHOT_WIDTH = 1200
# How far the data gathering takes the bar; rendering and storing take the rest.
GATHER_SHARE = 80
MAX_PENDING_PER_USER = 3

_FILTER_KEYS = ("from", "to", "person", "device", "group", "policy", "severity", "status", "type", "order")


# --- the filters, stored and re-applied ---------------------------------------------------------


def export_params_from_filters(
    *, filters: LogFilters, descending: bool = True, group: MonitoringGroup | None = None
) -> dict:
    """The log viewer's filters as JSON-safe identifiers for ExportJob.params (re-checked when run)."""
    return {
        "from": filters.start.isoformat() if filters.start else "",
        "to": filters.end.isoformat() if filters.end else "",
        "person": str(filters.person.uuid) if filters.person else "",
        "device": str(filters.device.uuid) if filters.device else "",
        "group": str(group.uuid) if group is not None else "",
        "policy": str(filters.policy.uuid) if filters.policy else "",
        "severity": filters.severity,
        "status": filters.status,
        "type": filters.event_type,
        "order": "desc" if descending else "asc",
    }


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _datetime(value) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


@dataclass(frozen=True)
class ExportFilters:
    """The filters re-applied for the requester, and what the report's heading says about them."""

    filters: LogFilters
    descending: bool
    group: MonitoringGroup | None = None
    # Filters naming something the requester can no longer see: the report says they were dropped.
    dropped: list[str] = field(default_factory=list)


def _visible_group(user, group_uuid: uuid.UUID) -> tuple[MonitoringGroup | None, frozenset[int]]:
    """The group (one the user sees, or their personal group) and its subgroups they see, as the console's tree does."""
    allowed = set(
        MonitoringGroup.objects.filter(
            Q(pk__in=access.visible_group_ids(user), owner__isnull=True) | Q(owner_id=user.pk)
        ).values_list("pk", flat=True)
    )
    group = MonitoringGroup.objects.filter(uuid=group_uuid, pk__in=allowed).first()
    if group is None:
        return None, frozenset()
    ids, frontier = {group.pk}, {group.pk}
    while frontier:
        frontier = (
            set(MonitoringGroup.objects.filter(parent_id__in=frontier, pk__in=allowed).values_list("pk", flat=True))
            - ids
        )
        ids |= frontier
    return group, frozenset(ids)


def export_filters_for(*, user, params: dict) -> ExportFilters:
    """The stored filters as LogFilters for `user`: everything named is looked up among what they see now."""
    dropped: list[str] = []

    def lookup(key: str, label: str, queryset):
        wanted = _uuid(params.get(key))
        if params.get(key) and wanted is None:
            dropped.append(label)
            return None
        if wanted is None:
            return None
        found = queryset.filter(uuid=wanted).first()
        if found is None:
            dropped.append(label)
        return found

    person = lookup("person", "person", access.visible_people(user))
    device = lookup("device", "computer", access.visible_devices(user))
    policy = lookup("policy", "policy", KeywordPolicy.objects.all())
    group, group_ids = None, frozenset()
    group_uuid = _uuid(params.get("group"))
    if group_uuid is not None:
        group, group_ids = _visible_group(user, group_uuid)
        if group is None:
            dropped.append("group")
    severity = params.get("severity") or ""
    status = params.get("status") or ""
    filters = LogFilters(
        start=_datetime(params.get("from")),
        end=_datetime(params.get("to")),
        person=person,
        device=device,
        group_ids=group_ids,
        policy=policy,
        severity=severity if severity in Severity.values else "",
        status=status if status in CaptureStatus.values else "",
        event_type=str(params.get("type") or ""),
    )
    return ExportFilters(filters=filters, descending=params.get("order", "desc") != "asc", group=group, dropped=dropped)


def _filter_summary(chosen: ExportFilters) -> list[tuple[str, str]]:
    """The filters as (label, value) lines for the report's heading."""
    filters = chosen.filters
    local = timezone.localtime
    lines: list[tuple[str, str]] = []
    if filters.start:
        lines.append(("From", f"{local(filters.start):%d %b %Y %H:%M}"))
    if filters.end:
        lines.append(("Until (not including)", f"{local(filters.end):%d %b %Y %H:%M}"))
    if chosen.group is not None:
        lines.append(("Group", chosen.group.name))
    if filters.person is not None:
        lines.append(
            ("Person", f"{filters.person.display_name or filters.person.username} ({filters.person.username})")
        )
    if filters.device is not None:
        lines.append(("Computer", filters.device.hostname))
    if filters.policy is not None:
        lines.append(("Policy", filters.policy.name))
    if filters.severity:
        lines.append(("Severity", Severity(filters.severity).label))
    if filters.status:
        lines.append(("Status", CaptureStatus(filters.status).label))
    if filters.event_type:
        lines.append(("Activity shown", filters.event_type))
    lines.append(("Order", "Newest first" if chosen.descending else "Oldest first"))
    return lines


# --- the report ---------------------------------------------------------------------------------


def _report_screenshot(capture: Capture) -> str:
    """The screenshot scaled to SCREENSHOT_WIDTH as a JPEG data: URI; '' when missing or unreadable."""
    if not capture.screenshot or not capture.screenshot.name:
        return ""
    try:
        with capture.screenshot.open("rb") as handle, Image.open(handle) as image:
            picture = image.convert("RGB")
    except (OSError, ValueError):
        logger.warning("Export: the screenshot of capture %s could not be read", capture.pk)
        return ""
    if picture.width > SCREENSHOT_WIDTH:
        picture = picture.resize(
            (SCREENSHOT_WIDTH, max(1, round(picture.height * SCREENSHOT_WIDTH / picture.width))),
            Image.Resampling.LANCZOS,
        )
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass
class ReportEntry:
    capture: Capture
    screenshot: str
    withheld: bool
    window_start: datetime
    window_end: datetime
    rows: list
    more_rows: bool


def logs_report_pdf(*, user, chosen: ExportFilters, progress: Callable[[int], None] | None = None) -> tuple[bytes, int]:
    """The log viewer report as PDF bytes for `user`, and how many captures it holds.

    Everything is read through the access-scoped selectors with `user`: a capture, event or
    screenshot they may not see cannot be in it. `progress` is called with 0-100.
    """
    from safeguard.captures.pdf import export_stamp, render_pdf
    from safeguard.logs.selectors import timeline_for_staff

    report = progress or (lambda percent: None)
    order = ("-occurred_at", "-id") if chosen.descending else ("occurred_at", "id")
    found = list(chosen.filters.filter_captures(captures_for_staff(user=user)).order_by(*order)[: MAX_CAPTURES + 1])
    truncated = len(found) > MAX_CAPTURES
    captures = found[:MAX_CAPTURES]
    entries: list[ReportEntry] = []
    for index, capture in enumerate(captures):
        window = LogFilters(
            start=capture.occurred_at - CONTEXT_WINDOW,
            end=capture.occurred_at + CONTEXT_WINDOW,
            person=capture.person,
            event_type=chosen.filters.event_type,
        )
        page = timeline_for_staff(user=user, filters=window, limit=MAX_ROWS_PER_WINDOW, descending=False)
        withheld = bool(capture.policy and capture.policy.is_illegal_content)
        entries.append(
            ReportEntry(
                capture=capture,
                screenshot="" if withheld else _report_screenshot(capture),
                withheld=withheld,
                window_start=window.start,
                window_end=window.end,
                rows=page.rows,
                more_rows=page.next_cursor is not None,
            )
        )
        report(int(GATHER_SHARE * (index + 1) / len(captures)))
    html = render_to_string(
        "captures/logs_report_pdf.html",
        {
            "entries": entries,
            "count": len(captures),
            "truncated": truncated,
            "max_captures": MAX_CAPTURES,
            "filter_lines": _filter_summary(chosen),
            "dropped": chosen.dropped,
            "window_minutes": int(CONTEXT_WINDOW.total_seconds() // 60),
            "max_rows": MAX_ROWS_PER_WINDOW,
            **export_stamp(user),
        },
    )
    report(GATHER_SHARE + 5)
    pdf = render_pdf(html)
    report(99)
    return pdf, len(captures)


# --- jobs ---------------------------------------------------------------------------------------


def export_job_create(*, requested_by, params: dict, kind: str = ExportJob.Kind.LOGS_REPORT) -> ExportJob:
    """Queue an export for `requested_by`; the task starts once the row is committed.

    At most MAX_PENDING_PER_USER of one staff member's exports wait or run at once (each can be
    a long render): a double click or an impatient reload does not fill the queue. Jobs older than
    an hour do not count, so one stranded by a lost worker never blocks anybody.
    """
    clean = {key: str(params.get(key) or "") for key in _FILTER_KEYS}
    pending = ExportJob.objects.filter(
        requested_by_id=requested_by.pk,
        status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING],
        created_at__gte=timezone.now() - timedelta(hours=1),
    ).count()
    if pending >= MAX_PENDING_PER_USER:
        raise ValidationError(
            f"You already have {pending} exports being made. Wait for one to finish, then export again."
        )
    with transaction.atomic():
        job = ExportJob.objects.create(requested_by=requested_by, kind=kind, params=clean)
        transaction.on_commit(lambda: _enqueue(job.pk), robust=True)
    return job


def _enqueue(job_id: int) -> None:
    from safeguard.captures.tasks import export_job_run

    export_job_run.delay(job_id)


def _set_progress(job_id: int, state: dict, percent: int) -> None:
    # One small UPDATE per whole percent gained, only while the job is still running.
    percent = max(0, min(99, percent))
    if percent > state["last"]:
        state["last"] = percent
        ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(progress=percent)


def export_job_run(*, job_id: int) -> bool:
    """Build the job's PDF; True if this call finished it. Idempotent.

    Claims the job (queued, or running when a worker died and the task was redelivered); a job
    already done or failed is left alone. The file is stored, then the job is marked done with
    a conditional update (still running, no file yet) in the transaction that writes the audit
    row; if another run got there first, this run's file is deleted again.
    """
    claimed = ExportJob.objects.filter(
        pk=job_id, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]
    ).update(status=ExportJob.Status.RUNNING, progress=0, updated_at=timezone.now())
    if not claimed:
        return False
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    user = job.requested_by
    if user is None or not user.is_active:
        _fail(job_id, "The account that asked for this export is no longer active.")
        return False
    try:
        chosen = export_filters_for(user=user, params=job.params)
        pdf, count = logs_report_pdf(user=user, chosen=chosen, progress=partial(_set_progress, job_id, {"last": -1}))
    except (OSError, DatabaseError):
        raise  # the task retries these
    except Exception:
        logger.exception("Export job %s failed", job_id)
        _fail(job_id, "The report could not be made. Try again, or narrow the filters.")
        return False
    storage = ExportJob._meta.get_field("file").storage
    name = storage.save(export_path(job, "report.pdf"), ContentFile(pdf))
    try:
        with transaction.atomic():
            finished = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING, file="").update(
                status=ExportJob.Status.DONE,
                progress=100,
                file=name,
                size_bytes=len(pdf),
                capture_count=count,
                finished_at=timezone.now(),
                updated_at=timezone.now(),
            )
            if finished:
                from safeguard.captures.pdf import export_audit

                export_audit(
                    action="logs.exported_pdf",
                    target=job,
                    exported_by=user,
                    summary=f"Exported a PDF report of {count} capture{'s' if count != 1 else ''} from the log viewer",
                    after={"captures": count, "bytes": len(pdf), "filters": job.params, "dropped": chosen.dropped},
                )
    except BaseException:
        storage.delete(name)
        raise
    if not finished:
        storage.delete(name)
        return False
    return True


def _fail(job_id: int, message: str) -> None:
    ExportJob.objects.filter(pk=job_id).exclude(status=ExportJob.Status.DONE).update(
        status=ExportJob.Status.FAILED, error=message[:500], finished_at=timezone.now(), updated_at=timezone.now()
    )


def export_job_fail(*, job_id: int, error: BaseException) -> None:
    """Mark the job failed after its last retry (the staff member sees a short reason, the log the detail)."""
    logger.error("Export job %s failed after retries: %r", job_id, error)
    _fail(job_id, "The report could not be stored. Try again later.")


# --- reads --------------------------------------------------------------------------------------


def export_jobs_for_requester(*, user):
    """The export jobs `user` asked for, newest first (nobody sees anyone else's)."""
    return ExportJob.objects.filter(requested_by_id=user.pk).order_by("-created_at", "-id")


def export_job_get_for_requester(*, user, job_uuid: uuid.UUID) -> ExportJob:
    """The job if `user` asked for it, else 404 (never 403: another person's export is not confirmed)."""
    return access.get_or_404(export_jobs_for_requester(user=user), uuid=job_uuid)
