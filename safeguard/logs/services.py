"""Writes for activity events and the audit log."""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from safeguard.groups.models import Device, Person
from safeguard.groups.services import device_touch, person_get_or_create
from safeguard.logs.models import ActivityEvent, AuditEntry, EventType


def audit_record(
    *,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    actor=None,
    actor_name: str = "",
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit row: who (`actor`, or `actor_name` for a device or the system) did what.

    `target` names the object by its model name and public UUID (its pk when it has none);
    `target_type`/`target_id` name it explicitly instead. The actor's name is copied so the row
    still says who acted after the account is deleted. Rows are never changed afterwards.
    """
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(getattr(target, "uuid", None) or target.pk)
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor_name[:255],
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary[:500],
        before=before,
        after=after,
    )


# How stale a person's last_seen_at may get before a batch rewrites it.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class EventBatchResult:
    """What an event batch did: how many events were stored, and which ids were already stored."""

    accepted: int
    duplicates: list[uuid.UUID]


def event_batch_ingest(*, device: Device, events: Sequence[Mapping[str, Any]]) -> EventBatchResult:
    """Store a validated batch of activity events from `device`; a resend stores nothing twice.

    Each event is a mapping with `id` (UUID), `type`, `occurred_at` (aware datetime), `user`
    (OS account name) and `data` (already validated for the type). The query count does not
    depend on the batch size: one lock, one lookup of the batch's people (plus one create per
    person never seen before), one "which ids exist" query, the bulk insert and the touches.

    Concurrency: the device row is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    IMMEDIATE transactions take the write lock at BEGIN), so two copies of the same batch from
    one device run one after the other and the second reports every id as a duplicate. Ids that
    collide with another device's events are caught by the unique index (ignore_conflicts): never
    stored twice, never an error.
    """
    ids = [event["id"] for event in events]
    with transaction.atomic():
        list(Device.objects.select_for_update().filter(pk=device.pk).order_by().values_list("pk", flat=True))
        people = _people_for_events(events)
        existing = set(ActivityEvent.objects.filter(uuid__in=ids).values_list("uuid", flat=True))
        new = [
            ActivityEvent(
                uuid=event["id"],
                type=event["type"],
                device=device,
                person=people[_username_key(event["user"])],
                occurred_at=event["occurred_at"],
                data=event.get("data") or {},
            )
            for event in events
            if event["id"] not in existing
        ]
        ActivityEvent.objects.bulk_create(new, ignore_conflicts=True)
        now = timezone.now()
        # At most one write a minute per person (like a token's last use): agents post every
        # 10-30 s, and rewriting the same rows each time only makes dead tuples to vacuum.
        Person.objects.filter(
            models.Q(last_seen_at__isnull=True) | models.Q(last_seen_at__lt=now - LAST_SEEN_RESOLUTION),
            pk__in={person.pk for person in people.values()},
        ).update(last_seen_at=now)
        # The most recent logon in the batch says who is now at the device.
        logons = [event for event in events if event["type"] == EventType.LOGON]
        latest_logon = max(logons, key=lambda event: event["occurred_at"], default=None)
        device_touch(device=device, person=people[_username_key(latest_logon["user"])] if latest_logon else None)
    return EventBatchResult(accepted=len(new), duplicates=[event_id for event_id in ids if event_id in existing])


def _username_key(username: str) -> str:
    return username.strip().lower()


def _people_for_events(events: Iterable[Mapping[str, Any]]) -> dict[str, Person]:
    """The person of every distinct user in the batch, keyed by lower-cased name; new ones are created.

    One query finds the people already known (by the lower-cased name, which the unique index is
    on); only names never seen before go through person_get_or_create, with the time of their
    earliest event in the batch as their first sighting.
    """
    first_seen: dict[str, tuple[str, Any]] = {}
    for event in events:
        key = _username_key(event["user"])
        if key not in first_seen or event["occurred_at"] < first_seen[key][1]:
            first_seen[key] = (event["user"].strip(), event["occurred_at"])
    known = Person.objects.annotate(username_lower=Lower("username")).filter(username_lower__in=list(first_seen))
    people = {_username_key(person.username): person for person in known}
    for key, (username, seen_at) in first_seen.items():
        if key not in people:
            people[key] = person_get_or_create(username=username, seen_at=seen_at)
    return people
