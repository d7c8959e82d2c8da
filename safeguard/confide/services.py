"""Writes for Confide reports and assistance requests."""

import uuid as uuid_module
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from safeguard.confide.models import AssistanceRequest, ConfideNote, ConfideReport
from safeguard.groups.models import Device
from safeguard.groups.services import person_get_or_create


def _to_the_hour(moment: datetime) -> datetime:
    """In UTC, so that half-hour zones truncate the same way and the sender's offset is not kept."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def confide_report_submit(
    *,
    uuid: uuid_module.UUID,
    message: str,
    about: str,
    anonymous: bool,
    occurred_at: datetime,
    device: Device,
    username: str | None = None,
) -> tuple[ConfideReport, bool]:
    """Store a pupil's Confide report once; returns (report, created). A resend of the same uuid is a no-op.

    An anonymous report keeps no trace of its sender: no person and no device, and every time
    on the row (reported, created, updated) only to the hour, so it cannot be matched against
    device activity. `username` and `device` are not even looked at for it. Nothing here logs.
    """
    existing = ConfideReport.objects.filter(uuid=uuid).first()
    if existing is not None:
        return existing, False
    if anonymous:
        person, reporting_device, reported_at = None, None, _to_the_hour(occurred_at)
    else:
        if not username:
            raise ValueError("a named Confide report needs the reporting user")
        person, reporting_device, reported_at = person_get_or_create(username=username), device, occurred_at
    try:
        with transaction.atomic():
            report = ConfideReport.objects.create(
                uuid=uuid,
                message=message,
                about=about,
                is_anonymous=anonymous,
                person=person,
                device=reporting_device,
                reported_at=reported_at,
            )
            if anonymous:
                # created_at/updated_at are set to the exact time on insert; blur them too.
                received = _to_the_hour(timezone.now())
                ConfideReport.objects.filter(pk=report.pk).update(created_at=received, updated_at=received)
                report.created_at = report.updated_at = received
    except IntegrityError:  # the same report arrived twice at once
        return ConfideReport.objects.get(uuid=uuid), False
    return report, True


def assistance_request_submit(
    *,
    uuid: uuid_module.UUID,
    device: Device,
    username: str,
    message: str,
    occurred_at: datetime,
) -> tuple[AssistanceRequest, bool]:
    """Store a pupil's request for help once; returns (request, created). A resend is a no-op."""
    existing = AssistanceRequest.objects.filter(uuid=uuid).first()
    if existing is not None:
        return existing, False
    person = person_get_or_create(username=username)
    try:
        with transaction.atomic():
            request = AssistanceRequest.objects.create(
                uuid=uuid, person=person, device=device, message=message, requested_at=occurred_at
            )
    except IntegrityError:
        return AssistanceRequest.objects.get(uuid=uuid), False
    return request, True


# --- Staff actions in the console (each written to the audit log) -------------------------------
# Summaries name the report by its UUID only: an audit row must not carry a sender's identity.


def confide_report_record_read(*, report: ConfideReport, reader) -> None:
    """Note in the audit log that `reader` opened the report: reading a disclosure is itself evidence."""
    from safeguard.logs.services import audit_record

    audit_record(actor=reader, action="confide.viewed", target=report, summary="Opened a Confide report")


def confide_report_set_status(*, report: ConfideReport, status: str, changed_by) -> bool:
    """Move the report to `status` (New, In progress, Closed). False when it already had it."""
    from safeguard.logs.services import audit_record

    if status not in ConfideReport.Status.values:
        raise ValueError(f"unknown Confide status {status!r}")
    with transaction.atomic():
        current = ConfideReport.objects.select_for_update().only("pk", "status").get(pk=report.pk)
        if current.status == status:
            return False
        ConfideReport.objects.filter(pk=report.pk).update(status=status, updated_at=timezone.now())
        audit_record(
            actor=changed_by,
            action="confide.status_changed",
            target=report,
            summary=f"Status changed from {ConfideReport.Status(current.status).label} to {ConfideReport.Status(status).label}",
            before={"status": current.status},
            after={"status": status},
        )
    report.status = status
    return True


def confide_report_set_handler(*, report: ConfideReport, handler, changed_by) -> bool:
    """Give the report to `handler` (None: nobody). False when nothing changed."""
    from safeguard.logs.services import audit_record

    with transaction.atomic():
        current = ConfideReport.objects.select_for_update().only("pk", "handler_id").get(pk=report.pk)
        new_id = handler.pk if handler is not None else None
        if current.handler_id == new_id:
            return False
        ConfideReport.objects.filter(pk=report.pk).update(handler_id=new_id, updated_at=timezone.now())
        audit_record(
            actor=changed_by,
            action="confide.handler_changed",
            target=report,
            summary=f"Handler set to {handler.get_username() if handler else 'nobody'}",
            before={"handler": current.handler_id},
            after={"handler": new_id},
        )
    report.handler = handler
    return True


def confide_note_add(*, report: ConfideReport, author, text: str) -> ConfideNote:
    """Add a staff note to the report."""
    from safeguard.logs.services import audit_record

    with transaction.atomic():
        note = ConfideNote.objects.create(report=report, author=author, text=text)
        audit_record(
            actor=author,
            action="confide.note_added",
            target=report,
            summary="Added a note to a Confide report",
            after={"note_id": note.pk},
        )
    return note


def assistance_request_acknowledge(*, assistance: AssistanceRequest, acknowledged_by) -> bool:
    """Mark the request seen by `acknowledged_by`. The first acknowledgement wins; False for later ones."""
    from safeguard.logs.services import audit_record

    now = timezone.now()
    with transaction.atomic():
        updated = AssistanceRequest.objects.filter(pk=assistance.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=now, acknowledged_by=acknowledged_by
        )
        if updated:
            audit_record(
                actor=acknowledged_by,
                action="assistance.acknowledged",
                target=assistance,
                summary=f"Acknowledged the assistance request from {assistance.person} on {assistance.device}",
            )
    assistance.refresh_from_db()
    return bool(updated)
