"""Escalation of severe captures nobody has opened: what schools ask for out of hours.

A group's `EscalationSettings` hold an ordered contact list, a time (`minutes`) and a number of
rounds. A capture of the group (its person in the group or a subgroup, or its device in a device
group) at or above the settings' severity, still New, that nobody has opened or changed, gets:

- round 1: `minutes` after it arrived, the first contact is emailed;
- round k: `minutes` after round k-1 was sent, the next contact (the list starts over when it
  runs out), up to `max_rounds` rounds.

"Opened or changed": a staff member opened its page in the console (a `CaptureView` row, written
by the capture page), or the capture has any audit row by a staff member (status, assignee,
note, move, screenshot viewed, exported), or it is no longer New.

The beat task (policies.tasks.escalations_send_due, every minute) calls `escalations_send_due`;
each round is a unique (capture, group, round) row claimed before the email goes out, so a second
sweep, a redelivered task or two beat processes by mistake send each round once. Contacts who may
not see the capture are skipped (the access rule); the time is passed in, so tests control it.

Only captures that arrived after the group's escalation was set up, and within ESCALATION_HORIZON,
start escalating: switching escalation on does not email about last week's captures.
"""

import logging
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.groups.models import GroupKind, Membership, MonitoringGroup
from safeguard.logs.models import AuditEntry
from safeguard.policies.alerts import (
    capture_email,
    capture_viewer_ids,
    claim_again,
    claim_mark_sent,
    claim_release,
    new_claim_token,
)
from safeguard.policies.models import (
    CaptureView,
    DeliveryStatus,
    EscalationRound,
    EscalationSettings,
    Severity,
)

logger = logging.getLogger(__name__)

ESCALATION_HORIZON = timedelta(days=1)


def capture_record_view(*, capture: Capture, user) -> bool:
    """Note that `user` opened the capture's page (the first time only); True if this was the first."""
    if user is None or not user.is_authenticated:
        return False
    if CaptureView.objects.filter(capture=capture, user=user).exists():
        return False
    try:
        with transaction.atomic():
            CaptureView.objects.create(capture=capture, user=user)
    except IntegrityError:  # the same person's second tab, at the same moment
        return False
    return True


def captures_opened(*, captures: list[Capture]) -> set[int]:
    """The ids of `captures` that staff opened or changed (see the module docstring)."""
    ids = {capture.pk for capture in captures}
    opened = {capture.pk for capture in captures if capture.status != CaptureStatus.NEW}
    opened |= set(CaptureView.objects.filter(capture_id__in=ids).values_list("capture_id", flat=True))
    by_uuid = {str(capture.uuid): capture.pk for capture in captures}
    touched = AuditEntry.objects.filter(
        target_type="capture", target_id__in=list(by_uuid), actor__isnull=False
    ).values_list("target_id", flat=True)
    opened |= {by_uuid[target_id] for target_id in touched}
    return opened


def _group_and_descendants(group_id: int) -> set[int]:
    result = {group_id}
    frontier = {group_id}
    while frontier:
        frontier = set(MonitoringGroup.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)) - result
        result |= frontier
    return result


def _candidates(settings_row: EscalationSettings, now: datetime) -> list[Capture]:
    group = settings_row.group
    group_ids = _group_and_descendants(group.pk)
    members = Membership.objects.filter(group_id__in=group_ids)
    if group.kind == GroupKind.USER:
        in_group = {"person_id__in": members.filter(person__isnull=False).values("person_id")}
    else:
        in_group = {"device_id__in": members.filter(device__isnull=False).values("device_id")}
    since = max(settings_row.created_at, now - ESCALATION_HORIZON - settings_row.max_rounds * _step(settings_row))
    return list(
        Capture.objects.filter(
            status=CaptureStatus.NEW,
            severity__in=Severity.at_least(settings_row.min_severity),
            received_at__gte=since,
            received_at__lte=now - _step(settings_row),
            **in_group,
        )
        .select_related("person", "device", "policy")
        .order_by("received_at", "pk")
    )


def _step(settings_row: EscalationSettings) -> timedelta:
    return timedelta(minutes=settings_row.minutes)


def _intro(round_number: int, settings_row: EscalationSettings) -> str:
    minutes = settings_row.minutes
    waited = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if round_number == 1:
        return f"Escalation: nobody has opened this capture in the {waited} since it arrived."
    return (
        f"Escalation, round {round_number} of {settings_row.max_rounds}: nobody has opened this capture "
        f"in the {waited} since the last contact was emailed."
    )


def _send_round(escalation_round: EscalationRound, capture: Capture, settings_row, *, token: str) -> bool:
    message = capture_email(
        capture=capture,
        to=escalation_round.address,
        kind="escalation",
        # Opaque but fixed per (capture, group, round): internal ids stay out of mail headers.
        key=uuid.uuid5(capture.uuid, f"escalation/{escalation_round.group_id}/{escalation_round.round}"),
        subject_prefix="ESCALATION:",
        intro=_intro(escalation_round.round, settings_row),
    )
    try:
        message.send()
    except Exception:
        claim_release(EscalationRound, escalation_round, token=token)
        raise
    return claim_mark_sent(EscalationRound, escalation_round, token=token)


def _next_round(
    settings_row: EscalationSettings, capture: Capture, contacts: list, rounds: list[EscalationRound], now: datetime
) -> EscalationRound | None:
    """Claim the capture's next round if it is due; None when not due, finished, or nobody may be emailed."""
    last = rounds[-1] if rounds else None
    number = last.round + 1 if last else 1
    if number > settings_row.max_rounds:
        return None
    started = last.started_at if last else capture.received_at
    if started + _step(settings_row) > now:
        return None
    viewers = capture_viewer_ids(capture=capture)
    eligible = [contact for contact in contacts if contact.user_id in viewers]
    if not eligible:
        logger.warning("Escalation of capture %s: no contact of %s may see it", capture.pk, settings_row.group)
        return None
    contact = eligible[(number - 1) % len(eligible)]
    return EscalationRound(
        capture=capture,
        group_id=settings_row.group_id,
        round=number,
        contact=contact.user,
        address=contact.user.email.strip().lower(),
        started_at=now,
        status=DeliveryStatus.PENDING,
        claimed_at=now,
    )


def escalations_send_due(*, now: datetime | None = None, claimant: str = "") -> int:
    """Email every escalation round that is due; returns how many emails this call sent."""
    now = now or timezone.now()
    token = claimant or new_claim_token()
    sent = 0
    errors: list[Exception] = []
    for settings_row in EscalationSettings.objects.filter(enabled=True).select_related("group").order_by("pk"):
        contacts = list(
            settings_row.contacts.filter(user__is_active=True)
            .exclude(user__email="")
            .select_related("user")
            .order_by("order", "pk")
        )
        if not contacts:
            continue
        captures = _candidates(settings_row, now)
        if not captures:
            continue
        opened = captures_opened(captures=captures)
        rounds_of: dict[int, list[EscalationRound]] = {}
        for escalation_round in EscalationRound.objects.filter(
            capture_id__in=[capture.pk for capture in captures], group_id=settings_row.group_id
        ).order_by("round"):
            rounds_of.setdefault(escalation_round.capture_id, []).append(escalation_round)
        for capture in captures:
            if capture.pk in opened:
                continue
            rounds = rounds_of.get(capture.pk, [])
            if rounds and rounds[-1].status == DeliveryStatus.PENDING:
                # A round whose sender died (or failed): send it again once its claim is stale or released.
                pending = rounds[-1]
                if not claim_again(EscalationRound, pending, token=token, claimant=claimant, now=now):
                    continue
            else:
                pending = _next_round(settings_row, capture, contacts, rounds, now)
                if pending is None:
                    continue
                pending.claimed_by = token
                try:
                    with transaction.atomic():
                        pending.save(force_insert=True)
                except IntegrityError:  # another sweep claimed this round
                    continue
            try:
                sent += int(_send_round(pending, capture, settings_row, token=token))
            except Exception as error:
                logger.warning("Escalation round %s of capture %s failed: %s", pending.round, capture.pk, error)
                errors.append(error)
    if errors:
        raise errors[0]
    return sent
