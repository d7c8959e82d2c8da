"""Reads for the console's monitor views (users, thumbnails, computer view).

Every query starts from the access rule (safeguard.core.access); the selected group of the
frame only narrows what the staff member already sees, so a personal group holding someone
else's pupil shows nothing more.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.core import access
from safeguard.groups.models import Device, GroupKind, Membership, MonitoringGroup, Person
from safeguard.groups.offline import device_offline_since
from safeguard.groups.offline import offline_after as device_offline_after
from safeguard.logs.models import ActivityEvent, EventType
from safeguard.policies.models import Severity

SEVERITIES_MOST_FIRST = [choice for choice in reversed(Severity.choices)]


def offline_after() -> timedelta:
    """A device not heard from for this long is shown as offline."""
    return timedelta(seconds=getattr(settings, "SAFEGUARD_DEVICE_OFFLINE_SECONDS", 180))


def _group_member_filter(selected: MonitoringGroup | None, selected_ids: frozenset[int]) -> tuple[str, QuerySet] | None:
    if selected is None:
        return None
    return selected.kind, Membership.objects.filter(group_id__in=selected_ids)


def person_list_for_staff(
    *, user, selected: MonitoringGroup | None = None, selected_ids: frozenset[int] = frozenset()
) -> QuerySet[Person]:
    """The people `user` sees, in the selected group (user group: members; device group: the
    people using its devices now), those with unreviewed captures first, with `unreviewed` counted."""
    people = access.visible_people(user)
    scope = _group_member_filter(selected, selected_ids)
    if scope is not None:
        kind, memberships = scope
        if kind == GroupKind.USER:
            people = people.filter(pk__in=memberships.filter(person__isnull=False).values("person_id"))
        else:
            devices = Device.objects.filter(pk__in=memberships.filter(device__isnull=False).values("device_id"))
            people = people.filter(pk__in=devices.filter(current_person__isnull=False).values("current_person_id"))
    return people.annotate(unreviewed=Count("captures", filter=Q(captures__status=CaptureStatus.NEW))).order_by(
        "-unreviewed", "display_name", "username"
    )


@dataclass
class SeverityCount:
    value: str
    label: str
    count: int


def unreviewed_by_severity(*, user, people: list[Person]) -> dict[int, list[SeverityCount]]:
    """For each person (already visible to `user`), their unreviewed captures by severity, most severe first.

    One query. Scoped again through the access rule, so a count can never include a capture
    the staff member could not open.
    """
    rows = (
        access.scope_by_person_or_device(
            Capture.objects.filter(person_id__in=[person.pk for person in people], status=CaptureStatus.NEW), user
        )
        .order_by()
        .values_list("person_id", "severity")
        .annotate(n=Count("pk"))
    )
    counts: dict[int, dict[str, int]] = {}
    for person_id, severity, n in rows:
        counts.setdefault(person_id, {})[severity] = n
    return {
        person_id: [
            SeverityCount(value, label, by_severity[value])
            for value, label in SEVERITIES_MOST_FIRST
            if by_severity.get(value)
        ]
        for person_id, by_severity in counts.items()
    }


def current_devices_of(*, user, people: list[Person]) -> dict[int, list[Device]]:
    """The visible devices each person is using now."""
    result: dict[int, list[Device]] = {}
    devices = access.visible_devices(user).filter(current_person_id__in=[person.pk for person in people])
    for device in devices.order_by("hostname"):
        result.setdefault(device.current_person_id, []).append(device)
    return result


@dataclass
class DeviceTile:
    device: Device
    alert_count: int
    online: bool
    # The current user's name, only when the staff member may see that person or the device's
    # group (the access rule for events); else None.
    current_person: Person | None
    # Set when the device has been silent longer than AgentSettings.offline_after_minutes: the
    # start of the outage, shown as "Offline since …" (safeguard.groups.offline).
    offline_since: datetime | None = None


def device_tiles_for_staff(
    *, user, selected: MonitoringGroup | None = None, selected_ids: frozenset[int] = frozenset()
) -> list[DeviceTile]:
    """The devices `user` sees (in the selected group), with the red-bar count: the unreviewed
    captures of each device's current user that `user` may see. Three queries."""
    devices = access.visible_devices(user).filter(revoked_at__isnull=True)
    scope = _group_member_filter(selected, selected_ids)
    if scope is not None:
        kind, memberships = scope
        if kind == GroupKind.DEVICE:
            devices = devices.filter(pk__in=memberships.filter(device__isnull=False).values("device_id"))
        else:
            devices = devices.filter(current_person_id__in=memberships.filter(person__isnull=False).values("person_id"))
    devices_list = list(devices.select_related("current_person").order_by("hostname"))
    person_ids = {device.current_person_id for device in devices_list if device.current_person_id}
    alerts = dict(
        access.scope_by_person_or_device(
            Capture.objects.filter(person_id__in=person_ids, status=CaptureStatus.NEW), user
        )
        .order_by()
        .values_list("person_id")
        .annotate(n=Count("pk"))
    )
    now = timezone.now()
    cutoff = now - offline_after()
    flag_after = device_offline_after()
    return [
        DeviceTile(
            device=device,
            alert_count=alerts.get(device.current_person_id, 0),
            online=bool(device.last_seen_at and device.last_seen_at >= cutoff),
            current_person=device.current_person,
            offline_since=device_offline_since(device=device, now=now, after=flag_after),
        )
        for device in devices_list
    ]


@dataclass
class DeviceActivity:
    """What the computer view shows about one device, all of it within the staff member's scope."""

    current_window: ActivityEvent | None
    recent: dict[str, list[ActivityEvent]] = field(default_factory=dict)
    captures: list[Capture] = field(default_factory=list)


ACTIVITY_SECTIONS = [
    (EventType.WINDOW, "Recent windows"),
    (EventType.WEBSITE, "Websites"),
    (EventType.APPLICATION, "Applications"),
    (EventType.PRINT, "Printed documents"),
    (EventType.FILE_DELETED, "Deleted files"),
]


def device_activity_for_staff(*, user, device: Device, limit: int = 15) -> DeviceActivity:
    """Recent activity and captures on `device` that `user` may see: everything when the device is
    in one of their device groups, else only the events of people they see."""
    events = access.scope_by_person_or_device(ActivityEvent.objects.filter(device=device), user).select_related(
        "person"
    )
    recent = {
        event_type: list(events.filter(type=event_type).order_by("-occurred_at", "-id")[:limit])
        for event_type, _label in ACTIVITY_SECTIONS
    }
    windows = recent[EventType.WINDOW]
    captures = list(
        access.scope_by_person_or_device(Capture.objects.filter(device=device), user)
        .select_related("person", "policy")
        .order_by("-occurred_at", "-id")[:limit]
    )
    return DeviceActivity(current_window=windows[0] if windows else None, recent=recent, captures=captures)
