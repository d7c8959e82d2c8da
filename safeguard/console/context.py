"""The console frame: toolbar, groups tree and tabs, computed once per request.

Every console page renders inside templates/console/base.html, which needs `frame` in its
context. Views get it with `console_context(request, area=..., tab=...)`, e.g.

    return render(request, "console/users.html", {**console_context(request, area="monitor", tab="users"), ...})

The tree lists only groups the staff member may see (safeguard.core.access) plus their own
personal groups, nested by parent. Its cost does not grow with the number of groups: the
access rule (one query per tree level, cached on the user), one query for the group rows and
the Confide right check.
"""

import uuid
from dataclasses import dataclass, field

from django.db.models import Q
from django.http import Http404, HttpRequest

from safeguard.core import access
from safeguard.groups.models import GroupKind, MonitoringGroup

AREAS = ("monitor", "captures", "logs", "recordings", "confide", "admin")


@dataclass
class GroupNode:
    group: MonitoringGroup
    children: list["GroupNode"] = field(default_factory=list)
    selected: bool = False
    # True when the selected group is this one or below it: the branch renders open.
    open: bool = False


@dataclass
class ConsoleFrame:
    area: str
    tab: str
    user_groups: list[GroupNode]
    device_groups: list[GroupNode]
    personal_groups: list[GroupNode]
    watch_groups: list[GroupNode]
    selected: MonitoringGroup | None
    # The selected group and every group under it that the tree shows (ids).
    selected_ids: frozenset[int]
    show_confide: bool
    show_admin: bool
    # Where a click on a group goes: the current view with ?group=<uuid>.
    group_url: str

    @property
    def group_query(self) -> str:
        """`?group=<uuid>` for links that keep the selection (tabs), or ''."""
        return f"?group={self.selected.uuid}" if self.selected else ""


def _build_forest(groups: list[MonitoringGroup], selected_pk: int | None) -> dict[int, GroupNode]:
    nodes = {group.pk: GroupNode(group=group, selected=group.pk == selected_pk) for group in groups}
    for node in nodes.values():
        parent = nodes.get(node.group.parent_id)
        if parent is not None:
            parent.children.append(node)
    if selected_pk in nodes:
        current: GroupNode | None = nodes[selected_pk]
        seen: set[int] = set()
        while current is not None and current.group.pk not in seen:
            seen.add(current.group.pk)
            current.open = True
            current = nodes.get(current.group.parent_id)
    return nodes


def _roots(nodes: dict[int, GroupNode], keep) -> list[GroupNode]:
    # A group whose parent the tree does not show becomes a root (e.g. access to "Form 9A" only).
    return [node for node in nodes.values() if keep(node.group) and node.group.parent_id not in nodes]


def _descendants(nodes: dict[int, GroupNode], pk: int) -> frozenset[int]:
    result: set[int] = set()
    stack = [nodes[pk]]
    while stack:
        node = stack.pop()
        if node.group.pk in result:
            continue
        result.add(node.group.pk)
        stack.extend(node.children)
    return frozenset(result)


def _selected_pk(request: HttpRequest, groups: list[MonitoringGroup]) -> int | None:
    raw = request.GET.get("group", "").strip()
    if not raw:
        return None
    try:
        wanted = uuid.UUID(raw)
    except ValueError:
        raise Http404("No such group.") from None
    for group in groups:
        if group.uuid == wanted:
            return group.pk
    raise Http404("No such group.")  # unknown, or not one this staff member may see


def console_context(
    request: HttpRequest, *, area: str = "monitor", tab: str = "", group_url: str | None = None
) -> dict:
    """`{"frame": ConsoleFrame}` for templates/console/base.html. A `?group=` outside the tree is 404."""
    cached = getattr(request, "_console_frame", None)
    if cached is not None and cached.area == area and cached.tab == tab:
        return {"frame": cached}
    user = request.user
    visible = access.visible_group_ids(user)
    groups = list(
        MonitoringGroup.objects.filter(Q(pk__in=visible, owner__isnull=True) | Q(owner_id=user.pk))
        .only("pk", "uuid", "name", "kind", "parent_id", "owner_id", "is_watch_group")
        .order_by("name", "pk")
    )
    selected_pk = _selected_pk(request, groups)
    nodes = _build_forest(groups, selected_pk)
    frame = ConsoleFrame(
        area=area,
        tab=tab,
        user_groups=_roots(nodes, lambda g: g.kind == GroupKind.USER and g.owner_id is None and not g.is_watch_group),
        device_groups=_roots(nodes, lambda g: g.kind == GroupKind.DEVICE and g.owner_id is None),
        personal_groups=_roots(nodes, lambda g: g.owner_id is not None),
        watch_groups=[node for node in nodes.values() if node.group.is_watch_group and node.group.owner_id is None],
        selected=nodes[selected_pk].group if selected_pk else None,
        selected_ids=_descendants(nodes, selected_pk) if selected_pk else frozenset(),
        show_confide=access.has_right(user, "confide"),
        show_admin=bool(user.is_staff or user.is_superuser),
        group_url=group_url if group_url is not None else request.path,
    )
    request._console_frame = frame
    return {"frame": frame}
