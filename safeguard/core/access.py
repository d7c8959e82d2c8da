"""Who on the staff may see what. Every console read goes through these helpers.

The rule, in one place:
- A staff member sees the groups they have a `StaffAccess` row for, and every subgroup of
  those (access to "Year 9" covers "Form 9A"). A superuser sees every group.
- They see the people who are members of their visible user groups, and the devices that are
  members of their visible device groups or are being used right now by a person they see.
- They see a capture or activity event when they see its person, or when its device is in one
  of their visible *device* groups (the IT suite's staff see what happens in the IT suite).
- Each right (view captures, manage captures, view recordings, Confide) is checked the same
  way, using only the access rows that grant it.
- An object outside these answers 404, never 403: staff learn nothing of what they cannot see.

Personal groups grant nothing: they organise people a staff member can already see.
"""

from typing import Literal

from django.db.models import Q, QuerySet
from django.http import Http404

from safeguard.groups.models import Device, GroupKind, Membership, MonitoringGroup, Person, StaffAccess

Right = Literal["view_captures", "manage_captures", "view_recordings", "confide"]

_RIGHT_FIELDS: dict[str, str] = {
    "view_captures": "can_view_captures",
    "manage_captures": "can_manage_captures",
    "view_recordings": "can_view_recordings",
    "confide": "is_confide_viewer",
}


def _cache(user) -> dict:
    # Group visibility is asked many times per request; remember it on the user object,
    # which lives exactly as long as the request.
    if not hasattr(user, "_safeguard_access_cache"):
        user._safeguard_access_cache = {}
    return user._safeguard_access_cache


def _with_descendants(group_ids: set[int]) -> set[int]:
    """The groups and all their subgroups: one query per tree level."""
    return set(_with_descendant_kinds(dict.fromkeys(group_ids, "")))


def _with_descendant_kinds(groups: dict[int, str]) -> dict[int, str]:
    """The groups and all their subgroups, as {id: kind} (the kinds of `groups` as given): one query per level."""
    result = dict(groups)
    frontier = set(groups)
    while frontier:
        children = dict(MonitoringGroup.objects.filter(parent_id__in=frontier).values_list("pk", "kind"))
        frontier = set(children) - set(result)
        result.update(children)
    return result


def _visible_groups(user, right: Right) -> dict[int, str]:
    """{id: kind} of the groups whose members `user` may see with `right` (cached for the request)."""
    cache = _cache(user)
    key = ("groups", right)
    if key not in cache:
        if user.is_superuser:
            groups = dict(MonitoringGroup.objects.values_list("pk", "kind"))
        else:
            granted = StaffAccess.objects.filter(user_id=user.pk, **{_RIGHT_FIELDS[right]: True})
            groups = _with_descendant_kinds(dict(granted.values_list("group_id", "group__kind")))
        cache[key] = groups
    return cache[key]


def visible_group_ids(user, right: Right = "view_captures") -> frozenset[int]:
    """Ids of the groups (user and device) whose members `user` may see with `right`."""
    if user is None or not user.is_authenticated:
        return frozenset()
    return frozenset(_visible_groups(user, right))


def _visible_group_ids_of_kind(user, right: Right, kind: str) -> list[int]:
    """The visible groups (as visible_group_ids) of one kind: user groups or device groups."""
    if user is None or not user.is_authenticated:
        return []
    return sorted(pk for pk, group_kind in _visible_groups(user, right).items() if group_kind == kind)


def _visible_person_ids(user, right: Right):
    # Person ids straight from the memberships of the visible user groups: no join with the
    # people or groups tables. Every list of events or captures filters on this subquery, and
    # at trust scale (20,000 pupils) the joins were most of a log viewer page's query time.
    return Membership.objects.filter(
        group_id__in=_visible_group_ids_of_kind(user, right, GroupKind.USER), person__isnull=False
    ).values("person_id")


def has_right(user, right: Right) -> bool:
    """Whether `user` holds `right` on at least one group (e.g. to show the Confide toolbar entry)."""
    return bool(visible_group_ids(user, right))


def visible_people(user, right: Right = "view_captures") -> QuerySet[Person]:
    return Person.objects.filter(pk__in=_visible_person_ids(user, right))


def _visible_group_device_ids(user, right: Right):
    return Membership.objects.filter(
        group_id__in=_visible_group_ids_of_kind(user, right, GroupKind.DEVICE), device__isnull=False
    ).values("device_id")


def visible_devices(user, right: Right = "view_captures") -> QuerySet[Device]:
    return Device.objects.filter(
        Q(pk__in=_visible_group_device_ids(user, right))
        | Q(current_person__in=visible_people(user, right).values("pk"))
    )


def scope_by_person_or_device(queryset: QuerySet, user, right: Right = "view_captures") -> QuerySet:
    """Filter rows with `person` and `device` foreign keys (captures, events, recordings) to what `user` sees."""
    return queryset.filter(
        Q(person_id__in=_visible_person_ids(user, right)) | Q(device_id__in=_visible_group_device_ids(user, right))
    )


def get_or_404(queryset: QuerySet, **lookup):
    """The one object matching `lookup` in an already-scoped queryset, or 404 (never 403)."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404("Not found.")
    return obj


def staff_with_right_over(*, person: Person | None, device: Device | None, right: Right = "manage_captures"):
    """The active staff accounts who hold `right` over `person` or `device`: the rule above, read backwards.

    Used to offer only real choices (e.g. the assignees of a capture: staff who can manage it).
    Access to a group covers its subgroups, so a grant on any ancestor of one of the person's
    user groups (or the device's device groups) counts; superusers hold every right.
    """
    from django.contrib.auth import get_user_model

    from safeguard.groups.selectors import group_ancestor_chains

    member = Q(pk__in=[])
    if person is not None:
        member |= Q(person_id=person.pk, group__kind=GroupKind.USER)
    if device is not None:
        member |= Q(device_id=device.pk, group__kind=GroupKind.DEVICE)
    direct = set(Membership.objects.filter(member).values_list("group_id", flat=True))
    covering = {group_id for chain in group_ancestor_chains(group_ids=direct).values() for group_id in chain}
    granted = StaffAccess.objects.filter(group_id__in=covering, **{_RIGHT_FIELDS[right]: True}).values("user_id")
    return get_user_model().objects.filter(Q(pk__in=granted) | Q(is_superuser=True), is_active=True)


def visible_recordings(user) -> QuerySet:
    """Recordings `user` may watch: on people/devices they see with the view_recordings right, and
    public, or private and theirs (a private recording is its owner's alone)."""
    from safeguard.captures.models import Recording

    return scope_by_person_or_device(Recording.objects.all(), user, "view_recordings").filter(
        Q(visibility=Recording.Visibility.PUBLIC) | Q(visibility=Recording.Visibility.PRIVATE, owner_id=user.pk)
    )
