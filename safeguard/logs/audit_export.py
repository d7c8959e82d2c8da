"""The audit log for inspectors: every entry in a date range as CSV, itself audited.

An inspector (Ofsted, a local authority, the school's own data protection officer) asks who
looked at or changed what between two dates. The export is read from the admin ("Audit
entries" → "Export for inspectors") by staff who may view the audit log; the export is written
to the audit log before the first row is sent, so the log shows who took a copy of it.

The range is in the school's time zone, both days included. Rows stream in creation order with
`iterator()`, so six years of log never sit in memory. Cells a spreadsheet would run as a formula
(summaries quote what pupils typed) are prefixed with `'` (safeguard.console.views_logs.csv_safe).
"""

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from safeguard.console.views_logs import csv_safe
from safeguard.logs.models import AuditEntry
from safeguard.logs.services import audit_record

HEADERS = [
    "created_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "summary",
    "before",
    "after",
]


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def audit_entries_between(*, start: date, end: date) -> QuerySet[AuditEntry]:
    """Entries created from the start of `start` to the end of `end` (local days), oldest first."""
    return AuditEntry.objects.filter(
        created_at__gte=_local_midnight(start), created_at__lt=_local_midnight(end + timedelta(days=1))
    ).order_by("created_at", "id")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_export_csv(*, actor, start: date, end: date) -> Iterator[str]:
    """Record the export, then yield the CSV lines of the range's entries."""
    entries = audit_entries_between(start=start, end=end)
    count = entries.count()
    record = audit_record(
        actor=actor,
        action="audit.exported",
        target_type="audit_log",
        target_id=f"{start.isoformat()}..{end.isoformat()}",
        summary=f"Exported {count} audit entr{'y' if count == 1 else 'ies'} from {start:%d %b %Y} to {end:%d %b %Y}",
        after={"from": start.isoformat(), "to": end.isoformat(), "entries": count},
    )
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADERS)
    # The export's own row is left out, so the file holds exactly the entries its row counts.
    for entry in entries.exclude(pk=record.pk).iterator(chunk_size=2000):
        yield writer.writerow(
            [
                csv_safe(cell)
                for cell in (
                    entry.created_at.astimezone(timezone.get_current_timezone()).isoformat(),
                    entry.actor_name,
                    entry.action,
                    entry.target_type,
                    entry.target_id,
                    entry.summary,
                    _json(entry.before),
                    _json(entry.after),
                )
            ]
        )
