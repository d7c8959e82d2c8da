"""Reads for captures and recordings."""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404

from safeguard.captures.models import Capture, Recording
from safeguard.core import access
from safeguard.core.access import Right
from safeguard.groups.models import Device, GroupKind, Membership, MonitoringGroup, Person
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Category, Keyword, KeywordPolicy, Severity

# Policies whose screenshots are blurred in the console until a click.
GRAPHIC_CATEGORIES = frozenset({Category.ADULT_CONTENT, Category.GROOMING})


def capture_get_for_device(*, device: Device, capture_uuid: uuid.UUID) -> Capture:
    """The capture with this UUID reported by `device`, else 404.

    Another device's capture answers 404 too, exactly like an unknown id: a device may only
    add to what it reported itself, and the answer must not confirm that the id exists.
    """
    capture = Capture.objects.select_related("person").filter(uuid=capture_uuid, device=device).first()
    if capture is None:
        raise Http404("No such capture.")
    return capture


def keyword_find_for_capture(*, text: str) -> Keyword | None:
    """The enabled keyword with this text (case-insensitive) that a capture without a policy belongs to.

    Several policies may list the same word; the most severe wins (then a keyword of an enabled
    policy, then the oldest), so the capture is never under-rated.
    """
    severity_rank = Case(
        *[When(severity=choice.value, then=Value(Severity.rank(choice.value))) for choice in Severity],
        default=Value(-1),
        output_field=IntegerField(),
    )
    return (
        Keyword.objects.select_related("policy")
        .filter(enabled=True, text__iexact=text.strip())
        .annotate(severity_rank=severity_rank)
        .order_by("-severity_rank", "-policy__enabled", "pk")
        .first()
    )


# --- The console: captures a staff member may see -------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A keyset position: the sort key of the last row shown, (occurred_at, rank, id).

    `rank` orders the two tables of the merged timeline at one instant (0 events, 1 captures);
    single-table lists use 0. It travels in the query string as an opaque URL-safe token.
    """

    occurred_at: datetime
    pk: int
    rank: int = 0

    def encode(self) -> str:
        raw = f"{self.occurred_at.isoformat()}|{self.rank}|{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> "Cursor | None":
        """The cursor in `token`, or None when it is not one (the caller says so and starts over)."""
        if not token or len(token) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, rank, pk = raw.split("|")
            occurred_at = datetime.fromisoformat(when)
            if occurred_at.tzinfo is None or rank not in ("0", "1"):
                return None
            return cls(occurred_at=occurred_at, pk=int(pk), rank=int(rank))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return None

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.occurred_at, self.rank, self.pk)


@dataclass(frozen=True)
class LogFilters:
    """What the captures list and the log viewer filter by. Objects are already checked as visible.

    `start` is inclusive and `end` exclusive. `group_ids` is the chosen group with its subgroups
    (user or device groups: a row matches when its person or its device is a member of one).
    """

    start: datetime | None = None
    end: datetime | None = None
    person: Person | None = None
    device: Device | None = None
    group_ids: frozenset[int] = frozenset()
    policy: KeywordPolicy | None = None
    severity: str = ""
    status: str = ""
    event_type: str = ""

    def filter_common(self, queryset: QuerySet) -> QuerySet:
        """The filters captures and activity events share: time, person, device, group."""
        if self.start is not None:
            queryset = queryset.filter(occurred_at__gte=self.start)
        if self.end is not None:
            queryset = queryset.filter(occurred_at__lt=self.end)
        if self.person is not None:
            queryset = queryset.filter(person_id=self.person.pk)
        if self.device is not None:
            queryset = queryset.filter(device_id=self.device.pk)
        if self.group_ids:
            members = Membership.objects.filter(group_id__in=self.group_ids)
            queryset = queryset.filter(
                Q(person_id__in=members.filter(person__isnull=False).values("person_id"))
                | Q(device_id__in=members.filter(device__isnull=False).values("device_id"))
            )
        return queryset

    def filter_captures(self, queryset: QuerySet) -> QuerySet:
        queryset = self.filter_common(queryset)
        if self.policy is not None:
            queryset = queryset.filter(policy_id=self.policy.pk)
        if self.severity:
            queryset = queryset.filter(severity=self.severity)
        if self.status:
            queryset = queryset.filter(status=self.status)
        return queryset


def keyset_after(*, cursor: Cursor | None, rank: int, descending: bool = True) -> Q:
    """The rows of a table whose rows all have `rank` that come after `cursor` in (occurred_at, rank, id) order.

    The rank is constant within one table, so comparing it with the cursor's rank turns the
    three-part comparison into a condition on (occurred_at, id) that the (-occurred_at, -id)
    indexes answer.
    """
    if cursor is None:
        return Q()
    before = "lt" if descending else "gt"
    strictly = Q(**{f"occurred_at__{before}": cursor.occurred_at})
    if (rank < cursor.rank) == descending and rank != cursor.rank:
        return strictly | Q(occurred_at=cursor.occurred_at)
    if rank != cursor.rank:
        return strictly
    return strictly | Q(occurred_at=cursor.occurred_at, **{f"id__{before}": cursor.pk})


@dataclass
class Page:
    """One page of a keyset-paginated list, and where the next one starts (None on the last)."""

    rows: list
    next_cursor: Cursor | None


def captures_for_staff(*, user, right: Right = "view_captures") -> QuerySet[Capture]:
    """Every capture `user` may see with `right` (safeguard.core.access), with what a row shows."""
    return access.scope_by_person_or_device(Capture.objects.all(), user, right).select_related(
        "person", "device", "policy", "assignee"
    )


def capture_get_for_staff(*, user, capture_uuid: uuid.UUID, right: Right = "view_captures") -> Capture:
    """The capture if `user` may see it with `right`, else 404 (never 403: existence is not confirmed)."""
    return access.get_or_404(captures_for_staff(user=user, right=right), uuid=capture_uuid)


def capture_list_for_staff(
    *, user, filters: LogFilters, cursor: Cursor | None = None, limit: int = 50, descending: bool = True
) -> Page:
    """A page of the captures `user` sees matching `filters`, newest first, after `cursor`.

    Keyset pagination on (occurred_at, id): no OFFSET, so page 1,000 costs what page 1 costs,
    and rows arriving meanwhile never shift a page. One query per page (limit + 1 rows tell
    whether a next page exists).
    """
    order = ("-occurred_at", "-id") if descending else ("occurred_at", "id")
    queryset = filters.filter_captures(captures_for_staff(user=user)).filter(
        keyset_after(cursor=cursor, rank=0, descending=descending)
    )
    rows = list(queryset.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(occurred_at=rows[-1].occurred_at, pk=rows[-1].pk)
    return Page(rows=rows, next_cursor=next_cursor)


def capture_count_for_staff(*, user, filters: LogFilters) -> int:
    """How many captures `user` sees matching `filters` (only ever what they may see)."""
    return filters.filter_captures(access.scope_by_person_or_device(Capture.objects.all(), user)).count()


def capture_recordings_visible(*, user, capture_ids: list[int]) -> dict[int, Recording]:
    """The recordings of these captures that `user` may watch (access.visible_recordings), by capture id.

    One query for a whole page of captures.
    """
    if not capture_ids:
        return {}
    recordings = access.visible_recordings(user).filter(capture_id__in=capture_ids)
    return {recording.capture_id: recording for recording in recordings.only("pk", "uuid", "capture_id")}


def capture_history(*, capture: Capture) -> list[AuditEntry]:
    """Who did what to the capture, oldest first (its audit rows)."""
    return list(
        AuditEntry.objects.filter(target_type="capture", target_id=str(capture.uuid))
        .select_related("actor")
        .order_by("created_at", "id")
    )


def capture_assignee_choices(*, capture: Capture) -> QuerySet:
    """The staff a capture can be given to: those who can manage it."""
    return access.staff_with_right_over(person=capture.person, device=capture.device).order_by(
        "first_name", "last_name", "username"
    )


def capture_move_target_groups(*, user) -> QuerySet[MonitoringGroup]:
    """User groups `user` may move a person into: visible ones with the manage right, and their own personal groups."""
    visible = access.visible_group_ids(user, "manage_captures")
    return MonitoringGroup.objects.filter(
        Q(pk__in=visible, owner__isnull=True) | Q(owner_id=user.pk), kind=GroupKind.USER
    ).order_by("name", "pk")


def capture_is_graphic(*, capture: Capture) -> bool:
    """Whether the screenshot is shown blurred until clicked: adult content, grooming or illegal content."""
    policy = capture.policy
    if policy is None:
        return False
    return policy.is_illegal_content or policy.category in GRAPHIC_CATEGORIES


def capture_iter_for_staff(*, user, filters: LogFilters, descending: bool = True, batch: int = 1000):
    """Every capture `user` sees matching `filters`, in list order, a keyset page at a time (for exports)."""
    cursor = None
    while True:
        page = capture_list_for_staff(user=user, filters=filters, cursor=cursor, limit=batch, descending=descending)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# --- Recordings, for the console ------------------------------------------------------------------


def recording_list_for_staff(*, user, selected=None, selected_ids: frozenset[int] = frozenset()):
    """The recordings `user` may watch (safeguard.core.access.visible_recordings), newest first,
    narrowed to the selected group: a user group's people, or a device group's devices."""
    from safeguard.core import access
    from safeguard.groups.models import GroupKind, Membership

    recordings = access.visible_recordings(user)
    if selected is not None:
        memberships = Membership.objects.filter(group_id__in=selected_ids)
        if selected.kind == GroupKind.DEVICE:
            recordings = recordings.filter(device_id__in=memberships.filter(device__isnull=False).values("device_id"))
        else:
            recordings = recordings.filter(person_id__in=memberships.filter(person__isnull=False).values("person_id"))
    return recordings.select_related("device", "person", "capture", "owner").order_by("-started_at", "-id")


def recording_get_for_staff(*, user, recording_uuid: uuid.UUID):
    """The recording with this UUID if `user` may watch it, else 404 (never 403)."""
    from safeguard.core import access

    return access.get_or_404(
        access.visible_recordings(user).select_related("device", "person", "capture", "owner"), uuid=recording_uuid
    )
