"""Writes for people, devices, enrolment and groups."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from safeguard.core.api import ApiError
from safeguard.core.tokens import hash_secret, new_enrolment_code, new_token
from safeguard.groups.models import (
    Device,
    DeviceCommand,
    DeviceToken,
    EnrolmentCode,
    GroupKind,
    Membership,
    MonitoringGroup,
    Person,
)

# Marks a heartbeat field the agent did not send (distinct from an explicit null).
UNCHANGED: object = object()


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


def enrolment_code_normalise(code: str) -> str:
    """The code in the form it was issued (XXXX-XXXX-XXXX-XXXX), however a person typed it.

    People type codes in lower case, with spaces or without dashes; every issued code is 16
    characters in groups of four, so regrouping the letters and digits recovers its hashed form.
    """
    compact = "".join(ch for ch in code.upper() if ch.isalnum())
    if len(compact) != 16:
        return code.strip().upper()
    return "-".join(compact[i : i + 4] for i in range(0, 16, 4))


def _claim_enrolment_code(code: str) -> EnrolmentCode:
    """Use one of the code's uses, atomically; refuse unknown, expired, revoked or used-up codes."""
    now = timezone.now()
    code = enrolment_code_normalise(code)
    claimed = EnrolmentCode.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        code_hash=hash_secret(code),
        revoked_at__isnull=True,
        uses__lt=F("max_uses"),
    ).update(uses=F("uses") + 1)
    if not claimed:
        raise ApiError(
            "Enrolment code is unknown, expired, revoked or used up.",
            fields={"code": ["unknown, expired, revoked or used up"]},
            status_code=400,
        )
    return EnrolmentCode.objects.get(code_hash=hash_secret(code))


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


def device_command_claim_pending(*, device: Device) -> list[DeviceCommand]:
    """Mark the device's undelivered commands delivered and return them, oldest first.

    Each command is handed to exactly one heartbeat, even when two run at once: on PostgreSQL
    the rows are locked FOR UPDATE SKIP LOCKED, so a concurrent heartbeat skips them, and once
    this transaction commits they are no longer pending. On SQLite (no row locks) the
    connection's IMMEDIATE transactions take the write lock at BEGIN, so heartbeats run one
    after the other. The update repeats the "still pending" condition as a second guard.
    """
    with transaction.atomic():
        pending = list(
            DeviceCommand.objects.select_for_update(skip_locked=True)
            .filter(device=device, delivered_at__isnull=True)
            .order_by("created_at", "id")
        )
        if not pending:
            return []
        now = timezone.now()
        DeviceCommand.objects.filter(pk__in=[command.pk for command in pending], delivered_at__isnull=True).update(
            delivered_at=now
        )
        for command in pending:
            command.delivered_at = now
        return pending


def device_heartbeat(
    *,
    device: Device,
    username: str | None = None,
    agent_version: str | None = None,
    monitoring_paused_until: datetime | None | object = UNCHANGED,
    event: str | None = None,
) -> list[DeviceCommand]:
    """Record a heartbeat and return the commands to deliver with its answer.

    Marks the device seen; the reported user (created on first sight) becomes its current
    person. `monitoring_paused_until` is stored when sent (None clears it), left alone when
    UNCHANGED. Start/pause/resume/stop events are tamper evidence, so each writes an audit row.
    """
    from safeguard.logs.services import audit_record

    now = timezone.now()
    with transaction.atomic():
        person = None
        if username:
            person = person_get_or_create(username=username, seen_at=now)
            Person.objects.filter(pk=person.pk).update(last_seen_at=now)
        device_touch(device=device, person=person)
        updates: dict = {}
        if agent_version:
            updates["agent_version"] = agent_version
        if monitoring_paused_until is not UNCHANGED:
            updates["monitoring_paused_until"] = monitoring_paused_until
        if updates:
            Device.objects.filter(pk=device.pk).update(**updates)
        if event:
            paused_until = None if monitoring_paused_until is UNCHANGED else monitoring_paused_until
            summary = f"Agent on {device.hostname} reported: monitoring {event}"
            if event == "paused" and paused_until is not None:
                summary += f" until {paused_until.isoformat()}"
            audit_record(
                actor=None,
                actor_name=device.hostname,
                action=f"device.{event}",
                target=device,
                summary=summary,
                after={
                    "event": event,
                    "user": username or None,
                    "monitoring_paused_until": paused_until.isoformat() if paused_until else None,
                },
            )
        return device_command_claim_pending(device=device)


def device_thumbnail_replace(*, device: Device, image: UploadedFile, extension: str) -> str:
    """Store a new live thumbnail for the device and delete the one it replaces.

    The file is named from the device's UUID and the time (never the client's file name).
    The device row is locked so two uploads at once cannot both think they replace the same
    file; the old file is deleted only after the commit, so a failed write loses nothing.
    Returns the stored file's name.
    """
    now = timezone.now()
    storage = Device._meta.get_field("thumbnail").storage
    with transaction.atomic():
        locked = Device.objects.select_for_update().only("pk", "uuid", "thumbnail").get(pk=device.pk)
        previous = locked.thumbnail.name
        locked.thumbnail.save(f"{locked.uuid}-{now:%Y%m%d%H%M%S%f}.{extension}", image, save=False)
        stored = locked.thumbnail.name
        try:
            Device.objects.filter(pk=device.pk).update(thumbnail=stored, thumbnail_updated_at=now)
        except Exception:
            storage.delete(stored)
            raise
        if previous and previous != stored:
            transaction.on_commit(lambda: storage.delete(previous))
    device.thumbnail.name = stored
    device.thumbnail_updated_at = now
    return stored


@dataclass(frozen=True)
class BulkAddResult:
    """What a bulk add did: members added, members who were already in the group, people created."""

    added: int
    already: int
    people_created: int


def _clean_lines(lines: Sequence[str], *, what: str, max_length: int) -> tuple[list[tuple[int, str]], list[str]]:
    """Non-blank entries as (line number, value), first spelling of each name only; and the errors found."""
    entries: list[tuple[int, str]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        value = raw.strip()
        if not value:
            continue
        if len(value) > max_length:
            errors.append(f"Line {number}: the {what} is longer than {max_length} characters.")
        elif any(ord(ch) < 32 for ch in value):
            errors.append(f"Line {number}: the {what} contains control characters.")
        elif value.lower() not in seen:
            seen.add(value.lower())
            entries.append((number, value))
    return entries, errors


def membership_bulk_add(
    *,
    group: MonitoringGroup,
    usernames: Sequence[str] = (),
    hostnames: Sequence[str] = (),
    people: Iterable[Person] = (),
    devices: Iterable[Device] = (),
    added_by=None,
) -> BulkAddResult:
    """Add many people (user group) or devices (device group) at once: all of them, or none.

    `usernames` and `hostnames` are lines as an admin pasted them (blank lines are skipped but
    counted, so errors name the line). Unknown usernames become people on first sight, as the
    agent would create them; hostnames must name exactly one enrolled, unrevoked device, since
    devices only exist by enrolling. Every line is checked before anything is written, and the
    writes share one transaction. Raises ValidationError listing every problem.
    """
    people = list(people)
    devices = list(devices)
    errors: list[str] = []
    wants_people = bool(people) or any(name.strip() for name in usernames)
    wants_devices = bool(devices) or any(name.strip() for name in hostnames)
    if group.kind == GroupKind.USER and wants_devices:
        errors.append(f"{group} is a user group: add people to it, not devices.")
    if group.kind == GroupKind.DEVICE and wants_people:
        errors.append(f"{group} is a device group: add devices to it, not people.")
    username_entries, username_errors = _clean_lines(usernames, what="username", max_length=255)
    hostname_entries, hostname_errors = _clean_lines(hostnames, what="hostname", max_length=255)
    errors += username_errors + hostname_errors

    found_devices: list[Device] = list(devices)
    for number, hostname in hostname_entries:
        matches = list(Device.objects.filter(hostname__iexact=hostname, revoked_at__isnull=True)[:2])
        if not matches:
            errors.append(f"Line {number}: no enrolled device is called {hostname}.")
        elif len(matches) > 1:
            errors.append(f"Line {number}: several enrolled devices are called {hostname}; pick them from the list.")
        else:
            found_devices.append(matches[0])
    if errors:
        raise ValidationError(errors)

    now = timezone.now()
    with transaction.atomic():
        lowered = [name.lower() for _, name in username_entries]
        existing = set(
            Person.objects.annotate(lower_name=Lower("username"))
            .filter(lower_name__in=lowered)
            .values_list("lower_name", flat=True)
        )
        members: dict[int, Person] = {}
        for _, username in username_entries:
            person = person_get_or_create(username=username, seen_at=now)
            members[person.pk] = person
        for person in people:
            members[person.pk] = person
        device_members: dict[int, Device] = {device.pk: device for device in found_devices}

        added = already = 0
        for person in members.values():
            _, created = Membership.objects.get_or_create(group=group, person=person, defaults={"added_by": added_by})
            added, already = (added + 1, already) if created else (added, already + 1)
        for device in device_members.values():
            _, created = Membership.objects.get_or_create(group=group, device=device, defaults={"added_by": added_by})
            added, already = (added + 1, already) if created else (added, already + 1)
        people_created = len({name for name in lowered if name not in existing})
        if added:
            from safeguard.logs.services import audit_record

            audit_record(
                actor=added_by,
                action="group.members_added",
                target=group,
                summary=f"Added {added} member(s) to {group} ({people_created} new people)",
                after={"added": added, "already": already, "people_created": people_created},
            )
    return BulkAddResult(added=added, already=already, people_created=people_created)


def enrolment_code_revoke(*, code: EnrolmentCode, revoked_by=None) -> bool:
    """Stop an enrolment code from enrolling more devices. False when it was already revoked."""
    from safeguard.logs.services import audit_record

    with transaction.atomic():
        revoked = EnrolmentCode.objects.filter(pk=code.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if revoked:
            audit_record(
                actor=revoked_by,
                action="enrolment_code.revoked",
                target=code,
                summary=f"Revoked enrolment code {code.code_hint}… {code.label}".strip(),
            )
    code.refresh_from_db()
    return bool(revoked)


def person_move_to_group(
    *, person: Person, group: MonitoringGroup, moved_by=None, reason: str = "", actor_name: str = "", details=None
) -> bool:
    """Put `person` in the user group `group` (e.g. the Watch Group); True if they were not in it yet.

    "Move" as schools know it from the product we replace: the person joins the group and keeps
    their other memberships, so the staff who already see them (their form tutor, their head of
    year) still do; taking them out of their year group would hide them from exactly those
    people. Who may move whom into which group is decided by the caller (the console offers only
    groups the staff member sees). Audited "person.moved_to_group"; a repeat changes nothing.
    An automatic move (an action rule) has no `moved_by`: `actor_name` says who acted instead,
    and `details` (a dict) adds to the audit row's "after", e.g. the rule's id.
    """
    from safeguard.logs.services import audit_record

    if group.kind != GroupKind.USER:
        raise ValidationError("People can only be moved into a user group.")
    with transaction.atomic():
        _, created = Membership.objects.get_or_create(group=group, person=person, defaults={"added_by": moved_by})
        if created:
            audit_record(
                actor=moved_by,
                actor_name=actor_name,
                action="person.moved_to_group",
                target=person,
                summary=f"Moved {person} to {group}" + (f" ({reason})" if reason else ""),
                before=None,
                after={"group": str(group.uuid), "group_name": group.name, "reason": reason or None, **(details or {})},
            )
    return created


def device_command_request(*, device: Device, type: str, params: dict, requested_by) -> DeviceCommand:  # noqa: A002
    """Queue a command for the device (delivered with its next heartbeat), and audit who asked."""
    from safeguard.logs.services import audit_record

    with transaction.atomic():
        command = DeviceCommand.objects.create(device=device, type=type, params=params, requested_by=requested_by)
        audit_record(
            actor=requested_by,
            action=f"device.command_{type}",
            target=device,
            summary=f"Asked {device.hostname} to {command.get_type_display().lower()} ({params})",
            after={"command": str(command.uuid), "type": type, "params": params},
        )
    return command


# -- pausing monitoring with the staff PIN ------------------------------------------------------

PAUSE_MAX_MINUTES = 24 * 60
PAUSE_PIN_MAX_FAILURES = 5
PAUSE_PIN_WINDOW = timedelta(minutes=15)


def device_pause_with_pin(*, device: Device, pin: str, minutes: int, username: str | None = None) -> datetime:
    """Check the staff PIN typed on a device and, if right, pause its monitoring for `minutes`.

    Returns when the pause ends. The PIN is checked against AgentSettings.disable_pin_hash (made
    with make_password). Every outcome is an audit row: `device.paused` on success, and
    `device.pause_pin_refused` on a wrong PIN — those rows double as the throttle: after
    PAUSE_PIN_MAX_FAILURES wrong PINs on one device within PAUSE_PIN_WINDOW, further tries are
    answered 429 (with Retry-After) without checking the PIN, so a pupil cannot guess a 4-digit
    PIN by trying them all. The device row is locked while checking, so parallel guesses are
    counted one after the other.

    Raises ApiError 403 when no PIN is set or the PIN is wrong, Throttled (429) when throttled.
    """
    from django.contrib.auth.hashers import check_password
    from rest_framework.exceptions import Throttled

    from safeguard.logs.models import AuditEntry
    from safeguard.logs.services import audit_record
    from safeguard.policies.models import AgentSettings

    now = timezone.now()
    refused = False
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).first()
        failures = list(
            AuditEntry.objects.filter(
                target_type="device",
                target_id=str(device.uuid),
                action="device.pause_pin_refused",
                created_at__gte=now - PAUSE_PIN_WINDOW,
            )
            .order_by("created_at")
            .values_list("created_at", flat=True)[:PAUSE_PIN_MAX_FAILURES]
        )
        if len(failures) >= PAUSE_PIN_MAX_FAILURES:
            wait = (failures[0] + PAUSE_PIN_WINDOW - now).total_seconds()
            raise Throttled(wait=max(1, int(wait) + 1), detail="Too many wrong PINs on this computer; try again later.")
        pin_hash = AgentSettings.load().disable_pin_hash
        if not pin_hash:
            raise ApiError(
                "No staff PIN is set on the server, so monitoring cannot be paused.",
                fields={"pin": ["no staff PIN is set"]},
                status_code=403,
            )
        user_note = f" ({username} logged on)" if username else ""
        if not check_password(pin, pin_hash):
            refused = True
            audit_record(
                actor_name=device.hostname,
                action="device.pause_pin_refused",
                target=device,
                summary=f"A wrong staff PIN was typed on {device.hostname}{user_note}",
                after={"user": username or None, "minutes": minutes},
            )
        else:
            until = now + timedelta(minutes=minutes)
            Device.objects.filter(pk=device.pk).update(monitoring_paused_until=until, last_seen_at=now)
            audit_record(
                actor_name=device.hostname,
                action="device.paused",
                target=device,
                summary=f"Monitoring on {device.hostname} paused with the staff PIN until {until.isoformat()}{user_note}",
                after={
                    "event": "paused",
                    "via": "staff PIN",
                    "user": username or None,
                    "minutes": minutes,
                    "monitoring_paused_until": until.isoformat(),
                },
            )
    if refused:  # raised after the commit, so the refusal's audit row (the throttle's count) is kept
        raise ApiError("Wrong PIN.", fields={"pin": ["incorrect"]}, status_code=403)
    device.monitoring_paused_until = until
    return until
