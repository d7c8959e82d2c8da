"""Writes for Confide reports and assistance requests."""

import uuid as uuid_module
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from safeguard.confide.models import AssistanceRequest, ConfideReport
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
