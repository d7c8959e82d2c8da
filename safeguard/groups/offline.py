"""Offline devices: flagged in the console, and optionally emailed to IT staff once per outage.

A device is *offline* when it has not reported (heartbeat, events, captures, thumbnails: anything
that calls device_touch) for longer than `AgentSettings.offline_after_minutes`; the outage starts
at its last report. The console's thumbnails and computer view show "Offline since …" (the
shorter "Offline · seen … ago" mark for a device that merely missed a beat stays as it was).

When `AgentSettings.offline_alert_addresses` is set, the beat task (groups.tasks.devices_offline_check,
every minute) emails those addresses one message listing the devices that went offline since the
last check. The claim is a unique (device, outage start) `DeviceOutage` row written before
sending, so each outage is emailed once; a device that reports again and then goes quiet starts a
new outage. The email names computers only, never who was using them: IT staff need the machine,
not the pupil. Revoked devices are never flagged; outages older than OUTAGE_ALERT_HORIZON are not
emailed (a computer retired without being revoked does not email when the addresses are first set).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from safeguard.groups.models import Device, GroupKind, Membership
from safeguard.policies.alerts import (
    CLAIM_STALE_AFTER,
    SUBJECT_PREFIX,
    claim_again,
    claim_mark_sent,
    claim_release,
    console_url,
    message_id,
    new_claim_token,
    parse_addresses,
)
from safeguard.policies.models import AgentSettings, DeliveryStatus, DeviceOutage

logger = logging.getLogger(__name__)

OUTAGE_ALERT_HORIZON = timedelta(days=1)


def offline_after(agent_settings: AgentSettings | None = None) -> timedelta:
    """How long a device may stay silent before it is flagged offline (AgentSettings)."""
    agent_settings = agent_settings or AgentSettings.load()
    return timedelta(minutes=max(1, agent_settings.offline_after_minutes))


def device_offline_since(*, device: Device, now: datetime, after: timedelta) -> datetime | None:
    """When the device's current outage began (its last report), or None if it is not offline."""
    if device.revoked_at is not None:
        return None
    last = device.last_seen_at or device.enrolled_at
    if last is None or last > now - after:
        return None
    return last


@dataclass(frozen=True)
class OutageLine:
    hostname: str
    os: str
    agent_version: str
    groups: str
    started_at: datetime


def _outage_lines(outages: list[DeviceOutage]) -> list[OutageLine]:
    device_ids = [outage.device_id for outage in outages]
    groups: dict[int, list[str]] = {}
    for device_id, name in (
        Membership.objects.filter(device_id__in=device_ids, group__kind=GroupKind.DEVICE)
        .order_by("group__name")
        .values_list("device_id", "group__name")
    ):
        groups.setdefault(device_id, []).append(name)
    return [
        OutageLine(
            hostname=outage.device.hostname,
            os=outage.device.os,
            agent_version=outage.device.agent_version,
            groups=", ".join(groups.get(outage.device_id, [])),
            started_at=timezone.localtime(outage.started_at),
        )
        for outage in outages
    ]


def devices_offline_email(*, outages: list[DeviceOutage], addresses: list[str], minutes: int, token: str):
    context = {
        "outages": _outage_lines(outages),
        "minutes": minutes,
        "console": console_url(reverse("console:thumbnails")),
    }
    count = len(outages)
    subject = (
        f"{SUBJECT_PREFIX} {outages[0].device.hostname} is offline"
        if count == 1
        else f"{SUBJECT_PREFIX} {count} computers are offline"
    )
    message = EmailMultiAlternatives(
        # The hostname comes from the agent: a line break in it must not make Django refuse the email.
        subject=" ".join(subject.split()),
        body=render_to_string("emails/devices_offline.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=addresses,
        headers={"Message-ID": message_id("offline", token), "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string("emails/devices_offline.html", context), "text/html")
    return message


def devices_offline_alert(*, now: datetime | None = None, claimant: str = "") -> int:
    """Email the IT addresses about devices newly offline (each outage once); returns how many outages were emailed."""
    now = now or timezone.now()
    agent_settings = AgentSettings.load()
    addresses = parse_addresses(agent_settings.offline_alert_addresses)
    if not addresses:
        return 0
    after = offline_after(agent_settings)
    token = claimant or new_claim_token()
    offline = list(
        Device.objects.filter(
            revoked_at__isnull=True, last_seen_at__lte=now - after, last_seen_at__gte=now - OUTAGE_ALERT_HORIZON
        ).values_list("pk", "last_seen_at")
    )
    if offline:
        with transaction.atomic():
            DeviceOutage.objects.bulk_create(
                [
                    DeviceOutage(
                        device_id=device_id,
                        started_at=last_seen_at,
                        detected_at=now,
                        addresses="\n".join(addresses),
                        status=DeliveryStatus.PENDING,
                        claimed_at=now,
                        claimed_by=token,
                    )
                    for device_id, last_seen_at in offline
                ],
                ignore_conflicts=True,  # the outage is already known: claimed by an earlier check
            )
    # Ours: the rows this call inserted, and any whose sender died or failed (stale or released claims).
    mine = list(DeviceOutage.objects.filter(status=DeliveryStatus.PENDING, claimed_by=token))
    for leftover in DeviceOutage.objects.filter(
        Q(claimed_by="") | Q(claimed_at__lte=now - CLAIM_STALE_AFTER), status=DeliveryStatus.PENDING
    ).exclude(claimed_by=token):
        if claim_again(DeviceOutage, leftover, token=token, claimant=claimant, now=now):
            mine.append(leftover)
    if not mine:
        return 0
    outages = list(
        DeviceOutage.objects.filter(pk__in=[outage.pk for outage in mine]).select_related("device").order_by("device")
    )
    message = devices_offline_email(
        outages=outages, addresses=addresses, minutes=agent_settings.offline_after_minutes, token=token
    )
    try:
        message.send()
    except Exception:
        for outage in outages:
            claim_release(DeviceOutage, outage, token=token)
        raise
    return sum(int(claim_mark_sent(DeviceOutage, outage, token=token)) for outage in outages)
