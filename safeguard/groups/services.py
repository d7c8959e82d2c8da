"""Writes for people, devices, enrolment and groups."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from safeguard.core.api import ApiError
from safeguard.core.tokens import hash_secret, new_enrolment_code, new_token
from safeguard.groups.models import Device, DeviceToken, EnrolmentCode, Membership, MonitoringGroup, Person


def person_get_or_create(*, username: str, seen_at: datetime | None = None) -> Person:
    """The person with this OS account name (case-insensitive), created on first sight."""
    username = username.strip()
    person = Person.objects.filter(username__iexact=username).first()
    if person is None:
        try:
            with transaction.atomic():
                person = Person.objects.create(username=username, first_seen_at=seen_at or timezone.now())
        except IntegrityError:  # created concurrently by another request
            person = Person.objects.get(username__iexact=username)
    return person


def enrolment_code_create(
    *,
    label: str = "",
    max_uses: int = 1,
    expires_at: datetime | None = None,
    device_group: MonitoringGroup | None = None,
    created_by=None,
) -> tuple[EnrolmentCode, str]:
    """A new enrolment code. Returns the row and the plain code, which is shown once and never stored."""
    code = new_enrolment_code()
    record = EnrolmentCode.objects.create(
        label=label,
        code_hash=hash_secret(code),
        code_hint=code[:4],
        max_uses=max_uses,
        expires_at=expires_at,
        device_group=device_group,
        created_by=created_by,
    )
    return record, code


def _claim_enrolment_code(code: str) -> EnrolmentCode:
    """Use one of the code's uses, atomically; refuse unknown, expired, revoked or used-up codes."""
    now = timezone.now()
    claimed = EnrolmentCode.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        code_hash=hash_secret(code.upper()),
        revoked_at__isnull=True,
        uses__lt=F("max_uses"),
    ).update(uses=F("uses") + 1)
    if not claimed:
        raise ApiError(
            "Enrolment code is unknown, expired, revoked or used up.",
            fields={"code": ["unknown, expired, revoked or used up"]},
            status_code=400,
        )
    return EnrolmentCode.objects.get(code_hash=hash_secret(code.upper()))


@transaction.atomic
def device_enrol(*, code: str, hostname: str, os: str, agent_version: str) -> tuple[Device, str]:
    """Enrol a device with an enrolment code. Returns the device and its new token (shown once)."""
    enrolment = _claim_enrolment_code(code)
    now = timezone.now()
    device = Device.objects.create(
        hostname=hostname, os=os, agent_version=agent_version, enrolled_at=now, last_seen_at=now
    )
    if enrolment.device_group_id:
        Membership.objects.create(group_id=enrolment.device_group_id, device=device)
    token = device_token_issue(device=device)
    return device, token


def device_token_issue(*, device: Device) -> str:
    """A new token for the device; earlier tokens stay valid until revoked (rotation)."""
    token = new_token()
    DeviceToken.objects.create(device=device, token_hash=hash_secret(token))
    return token


def device_token_rotate(*, device: Device) -> str:
    """Revoke every token of the device and issue a new one."""
    with transaction.atomic():
        DeviceToken.objects.filter(device=device, revoked_at__isnull=True).update(revoked_at=timezone.now())
        return device_token_issue(device=device)


def device_revoke(*, device: Device) -> None:
    """Stop the device's tokens from working. Its agent keeps its outbox until re-enrolled."""
    now = timezone.now()
    with transaction.atomic():
        Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=now)
        DeviceToken.objects.filter(device=device, revoked_at__isnull=True).update(revoked_at=now)
    device.refresh_from_db()


def device_touch(*, device: Device, person: Person | None = None) -> None:
    """Record that the device reported, and who is using it."""
    updates: dict = {"last_seen_at": timezone.now()}
    if person is not None:
        updates["current_person"] = person
    Device.objects.filter(pk=device.pk).update(**updates)
