"""Retention: delete what the school no longer needs to keep, rows and files together.

The periods live in RetentionSettings (the admin); docs/operations.md explains the defaults.
`retention_apply` runs daily from Celery beat (logs.tasks.retention_apply); `retention_plan` is
the admin's dry run: the same selection, counted, with nothing deleted.

Each kind of record is one `RetentionKind`: which rows are past their period, which files they
hold, and what "remove" means for it (delete the row, or clear a file field and keep the row: a
resolved capture outlives its screenshot). The kinds run in the order of KINDS, and a later kind
leaves alone what an earlier one removes (a deleted capture's recording goes with the capture,
not as a recording), so the dry run's counts are what the run will remove.

Work is done in bounded batches: each batch locks its rows (FOR UPDATE SKIP LOCKED on
PostgreSQL, so two runs at once split the work instead of colliding), re-checks them against the
period inside the lock (a capture reopened meanwhile is no longer resolved), removes them in one
transaction, and deletes their files only once that transaction has committed: a rollback never
leaves a row pointing at a deleted file. A run stops after `max_batches` batches per kind, so a
first run on a large backlog cannot hold a worker for hours; the next day's run carries on.

Activity events on PostgreSQL are partitioned by month (safeguard.logs.partitions): the months
wholly older than the cut-off are detached and dropped first, each with its own audit row
("retention.partition_dropped"), and only the rows left past the cut-off (the boundary month and
the DEFAULT partition) are deleted in batches. On SQLite every due row is deleted in batches.

Open captures (new, under review, escalated) and open Confide reports are never deleted here,
whatever their age: an unresolved concern must not vanish. Audit rows are deleted only past the
audit log's own (long) period, which the settings keep at least as long as what they describe.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.core.files.storage import Storage
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureStatus, ExportJob, Recording
from safeguard.confide.models import ConfideReport
from safeguard.groups.models import Device
from safeguard.logs.models import ActivityEvent, AuditEntry, RetentionSettings
from safeguard.logs.partitions import partitions_drop_before

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Rows without files are cheap to delete: bigger batches for them.
BULK_BATCH_SIZE = 5000
DEFAULT_MAX_BATCHES = 200
RESOLVED = (CaptureStatus.RESOLVED_ACTION, CaptureStatus.RESOLVED_FALSE_POSITIVE)


def _cutoff(days: int | None, now: datetime) -> datetime | None:
    return None if days is None else now - timedelta(days=days)


def _none(model) -> QuerySet:
    return model.objects.none()


# --- which rows are due ---------------------------------------------------------------------------


def _captures_due(rules: RetentionSettings, now: datetime) -> QuerySet[Capture]:
    """Resolved captures past their status's period, counted from their last change (the resolution)."""
    condition = Q(pk__in=[])
    for status, days in (
        (CaptureStatus.RESOLVED_FALSE_POSITIVE, rules.captures_false_positive_days),
        (CaptureStatus.RESOLVED_ACTION, rules.captures_resolved_days),
    ):
        cutoff = _cutoff(days, now)
        if cutoff is not None:
            condition |= Q(status=status, updated_at__lt=cutoff)
    return Capture.objects.filter(condition)


def _recordings_due(rules: RetentionSettings, now: datetime) -> QuerySet[Recording]:
    cutoff = _cutoff(rules.recordings_days, now)
    if cutoff is None:
        return _none(Recording)
    return Recording.objects.filter(
        Q(capture__isnull=True, started_at__lt=cutoff) | Q(capture__status__in=RESOLVED, capture__updated_at__lt=cutoff)
    ).exclude(capture__in=_captures_due(rules, now))


def _screenshots_due(rules: RetentionSettings, now: datetime) -> QuerySet[Capture]:
    cutoff = _cutoff(rules.screenshots_days, now)
    if cutoff is None:
        return _none(Capture)
    return (
        Capture.objects.filter(status__in=RESOLVED, updated_at__lt=cutoff)
        .filter(~Q(screenshot="") | ~Q(screenshot_preview=""))
        .exclude(pk__in=_captures_due(rules, now).values("pk"))
    )


def _events_due(rules: RetentionSettings, now: datetime) -> QuerySet[ActivityEvent]:
    cutoff = _cutoff(rules.activity_events_days, now)
    return _none(ActivityEvent) if cutoff is None else ActivityEvent.objects.filter(occurred_at__lt=cutoff)


def _thumbnails_due(rules: RetentionSettings, now: datetime) -> QuerySet[Device]:
    cutoff = _cutoff(rules.thumbnails_days, now)
    if cutoff is None:
        return _none(Device)
    return Device.objects.exclude(thumbnail="").filter(
        Q(thumbnail_updated_at__lt=cutoff) | Q(thumbnail_updated_at__isnull=True)
    )


def _confide_due(rules: RetentionSettings, now: datetime) -> QuerySet[ConfideReport]:
    cutoff = _cutoff(rules.confide_closed_days, now)
    if cutoff is None:
        return _none(ConfideReport)
    return ConfideReport.objects.filter(status=ConfideReport.Status.CLOSED, updated_at__lt=cutoff)


def _audit_due(rules: RetentionSettings, now: datetime) -> QuerySet[AuditEntry]:
    cutoff = _cutoff(rules.audit_log_days, now)
    return _none(AuditEntry) if cutoff is None else AuditEntry.objects.filter(created_at__lt=cutoff)


def _exports_due(rules: RetentionSettings, now: datetime) -> QuerySet[ExportJob]:
    cutoff = _cutoff(rules.export_files_days, now)
    return _none(ExportJob) if cutoff is None else ExportJob.objects.filter(created_at__lt=cutoff)


# --- the files rows hold --------------------------------------------------------------------------


def _names(rows: Iterable[tuple]) -> list[str]:
    return [name for row in rows for name in row if name]


def _capture_files(captures: QuerySet[Capture]) -> list[str]:
    own = _names(captures.values_list("screenshot", "screenshot_preview"))
    videos = _names(Recording.objects.filter(capture__in=captures.values("pk")).values_list("file"))
    return own + videos


def _field_files(field_names: tuple[str, ...]) -> Callable[[QuerySet], list[str]]:
    return lambda queryset: _names(queryset.values_list(*field_names))


def _no_files(queryset: QuerySet) -> list[str]:
    return []


def _drop_event_partitions(rules: RetentionSettings, now: datetime) -> int:
    """Drop the months of activity events wholly past the period (PostgreSQL), auditing each."""
    from safeguard.logs.services import audit_record

    cutoff = _cutoff(rules.activity_events_days, now)
    if cutoff is None:
        return 0
    dropped = partitions_drop_before(cutoff)
    for partition in dropped:
        audit_record(
            action="retention.partition_dropped",
            actor_name="Safeguard (retention)",
            target_type="activity_event_partition",
            target_id=partition.name,
            summary=f"Dropped the activity events of {partition.month:%B %Y} ({partition.rows} events), "
            f"all older than {rules.activity_events_days} days",
            after={"month": partition.month.isoformat(), "rows": partition.rows, "cutoff": cutoff.isoformat()},
        )
    return sum(partition.rows for partition in dropped)


# --- what "remove" means --------------------------------------------------------------------------


def _delete_rows(queryset: QuerySet) -> int:
    # Collector-based delete: cascades (a capture's notes, recording, alert rows) go with it.
    # AuditEntry.delete() refuses single deletes; the queryset delete is retention's privilege.
    deleted, per_model = queryset.delete()
    return per_model.get(queryset.model._meta.label, 0)


def _delete_audit_rows(queryset: QuerySet) -> int:
    # On PostgreSQL a trigger refuses every DELETE of audit rows (logs migration 0005) unless the
    # transaction says it is retention: say so for this delete alone, then take it back.
    if connection.vendor != "postgresql":
        return _delete_rows(queryset)
    # (A failed delete rolls the transaction back, and the setting with it.)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL safeguard.audit_retention = 'on'")
        removed = _delete_rows(queryset)
        cursor.execute("SET LOCAL safeguard.audit_retention = 'off'")
    return removed


def _clear_fields(**cleared: str) -> Callable[[QuerySet], int]:
    # A plain UPDATE: updated_at is not touched, so clearing a file never restarts a period.
    return lambda queryset: queryset.update(**cleared)


@dataclass(frozen=True)
class RetentionKind:
    key: str
    label: str
    setting: str  # the RetentionSettings field holding its period in days
    model: type
    due: Callable[[RetentionSettings, datetime], QuerySet]
    files: Callable[[QuerySet], list[str]]
    remove: Callable[[QuerySet], int]
    storage_field: str | None  # where its files are stored (model field), None when it has none
    action: str = "deleted"
    batch_size: int = DEFAULT_BATCH_SIZE
    # Runs before the batches: removes whole ranges at once where the database allows; rows removed.
    prune: Callable[[RetentionSettings, datetime], int] | None = None

    def storage(self) -> Storage | None:
        # Every file field uses the default storage; naming the field keeps that true if one changes.
        # (A capture's recording is stored alongside its screenshot.)
        if self.storage_field is None:
            return None
        model_name, field_name = self.storage_field.split(".")
        model = {"capture": Capture, "recording": Recording, "device": Device, "exportjob": ExportJob}[model_name]
        return model._meta.get_field(field_name).storage


KINDS: tuple[RetentionKind, ...] = (
    RetentionKind(
        "exports", "PDF exports", "export_files_days", ExportJob, _exports_due,
        _field_files(("file",)), _delete_rows, "exportjob.file",
    ),
    RetentionKind(
        "thumbnails", "Live thumbnails", "thumbnails_days", Device, _thumbnails_due,
        _field_files(("thumbnail",)), _clear_fields(thumbnail=""), "device.thumbnail", action="cleared",
    ),
    RetentionKind(
        "captures", "Resolved captures (with their notes, screenshots and recordings)",
        "captures_resolved_days", Capture, _captures_due, _capture_files, _delete_rows, "capture.screenshot",
    ),
    RetentionKind(
        "recordings", "Recordings", "recordings_days", Recording, _recordings_due,
        _field_files(("file",)), _delete_rows, "recording.file",
    ),
    RetentionKind(
        "screenshots", "Screenshots of resolved captures (the captures stay)", "screenshots_days", Capture,
        _screenshots_due, _field_files(("screenshot", "screenshot_preview")),
        _clear_fields(screenshot="", screenshot_preview=""), "capture.screenshot", action="cleared",
    ),
    RetentionKind(
        "activity_events", "Activity events", "activity_events_days", ActivityEvent, _events_due,
        _no_files, _delete_rows, None, batch_size=BULK_BATCH_SIZE, prune=_drop_event_partitions,
    ),
    RetentionKind(
        "confide", "Closed Confide reports (with their notes)", "confide_closed_days", ConfideReport,
        _confide_due, _no_files, _delete_rows, None,
    ),
    RetentionKind(
        "audit_log", "Audit log entries", "audit_log_days", AuditEntry, _audit_due,
        _no_files, _delete_audit_rows, None, batch_size=BULK_BATCH_SIZE,
    ),
)  # fmt: skip


# --- the dry run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindPlan:
    """What the next run would remove of one kind."""

    key: str
    label: str
    action: str
    periods: list[tuple[str, int | None]]
    rows: int
    files: int


def _periods(kind: RetentionKind, rules: RetentionSettings) -> list[tuple[str, int | None]]:
    if kind.key == "captures":
        return [
            ("resolved: false positive", rules.captures_false_positive_days),
            ("resolved: action taken", rules.captures_resolved_days),
        ]
    return [("", getattr(rules, kind.setting))]


def retention_plan(*, now: datetime | None = None, rules: RetentionSettings | None = None) -> list[KindPlan]:
    """Per kind, how many rows and files the next run would remove. Reads only; deletes nothing."""
    now = now or timezone.now()
    rules = rules or RetentionSettings.load()
    plans = []
    for kind in KINDS:
        due = kind.due(rules, now)
        plans.append(
            KindPlan(
                key=kind.key,
                label=kind.label,
                action=kind.action,
                periods=_periods(kind, rules),
                rows=due.count(),
                files=len(kind.files(due)),
            )
        )
    return plans


# --- the run --------------------------------------------------------------------------------------


def _delete_files(storage: Storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        # Already gone, the disk refuses, or the object store is unreachable (botocore's errors are
        # not OSErrors): the row is gone either way, and the log says which file was left behind.
        except Exception:
            logger.warning("Retention could not delete the file %s", name, exc_info=True)


def _apply_batch(kind: RetentionKind, rules: RetentionSettings, now: datetime, batch_size: int) -> tuple[int, int]:
    """Remove one batch of `kind`; (rows, files). Files are deleted after the commit."""
    with transaction.atomic():
        due = kind.due(rules, now)
        ids = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0, 0
        # Re-read through the period's condition inside the lock: rows changed meanwhile drop out.
        batch = kind.due(rules, now).filter(pk__in=ids)
        names = kind.files(batch)
        removed = kind.remove(batch)
        storage = kind.storage()
        if names and storage is not None:
            transaction.on_commit(partial(_delete_files, storage, names))
    return removed, len(names)


def retention_apply(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int = DEFAULT_MAX_BATCHES
) -> dict[str, dict[str, int]]:
    """Remove everything past its period, kind by kind, in bounded batches; returns {kind: {rows, files}}.

    Idempotent: a second run finds nothing more to do. The report is kept on RetentionSettings
    (shown in the admin) and in one "retention.applied" audit row.
    """
    from safeguard.logs.services import audit_record

    now = now or timezone.now()
    rules = RetentionSettings.load()
    report: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        rows = files = 0
        if kind.prune is not None:
            rows += kind.prune(rules, now)
        for _ in range(max_batches):
            batch_rows, batch_files = _apply_batch(kind, rules, now, batch_size or kind.batch_size)
            if not batch_rows:
                break
            rows += batch_rows
            files += batch_files
        report[kind.key] = {"rows": rows, "files": files}
    RetentionSettings.objects.filter(pk=rules.pk).update(last_run_at=now, last_run_report=report)
    if any(counts["rows"] for counts in report.values()):
        audit_record(
            action="retention.applied",
            actor_name="Safeguard (retention)",
            target_type="retention",
            target_id=now.date().isoformat(),
            summary="Removed "
            + ", ".join(
                f"{counts['rows']} {key.replace('_', ' ')}" for key, counts in report.items() if counts["rows"]
            ),
            after=report,
        )
    return report
