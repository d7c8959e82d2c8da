"""Reads for people, devices and groups."""

from django.db.models import Q

from safeguard.groups.models import Device, Membership, MonitoringGroup


def group_ancestor_chains(*, group_ids: set[int]) -> dict[int, list[int]]:
    """For each group, its id followed by its parent's, grandparent's, ... up to the root.

    Walks the tree one level per query (depth of the tree, not the number of groups), and
    stops on a cycle should a bad edit ever create one.
    """
    parent_of: dict[int, int | None] = {}
    frontier = set(group_ids)
    while frontier:
        rows = MonitoringGroup.objects.filter(pk__in=frontier).values_list("pk", "parent_id")
        parent_of.update(rows)
        frontier = {parent for parent in parent_of.values() if parent is not None and parent not in parent_of}
    chains: dict[int, list[int]] = {}
    for group_id in group_ids:
        if group_id not in parent_of:  # deleted meanwhile
            continue
        chain: list[int] = []
        current: int | None = group_id
        while current is not None and current not in chain:
            chain.append(current)
            current = parent_of.get(current)
        chains[group_id] = chain
    return chains


def device_group_ids_direct(*, device: Device) -> tuple[set[int], set[int]]:
    """The groups the device is in, and those its current person is in (direct memberships only).

    One query. The current person stands for "people recently using it": searching events or
    captures for everyone who used the device would cost far more on every config fetch.
    """
    condition = Q(device_id=device.pk)
    if device.current_person_id is not None:
        condition |= Q(person_id=device.current_person_id)
    device_groups: set[int] = set()
    person_groups: set[int] = set()
    for group_id, member_device_id in Membership.objects.filter(condition).values_list("group_id", "device_id"):
        (device_groups if member_device_id is not None else person_groups).add(group_id)
    return device_groups, person_groups


def device_user_group_names(*, device: Device) -> list[str]:
    """Names of the user groups the device's current person is in, for the agent's "Personal Groups" menu.

    Direct memberships only, sorted by name. Watch groups ("additional scrutiny") and staff
    members' personal groups are left out: the pupil at the keyboard sees this list, and neither
    is theirs to know about.
    """
    return list(
        MonitoringGroup.objects.filter(
            kind="user",
            is_watch_group=False,
            owner__isnull=True,
            memberships__person__current_devices=device,
        )
        .order_by("name", "pk")
        .values_list("name", flat=True)
        .distinct()
    )
