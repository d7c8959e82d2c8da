"""The console frame: areas toolbar, groups tree (only visible groups, nested), tabs, live slot."""

import re

import pytest
from django.test import Client

from safeguard.groups.models import GroupKind
from tests.factories import (
    DeviceGroupFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def tree_html(html: str) -> str:
    return html.split('id="groups-tree"', 1)[1].split("</nav>", 1)[0]


def test_console_requires_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_tree_shows_only_the_groups_the_teacher_may_see(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    UserGroupFactory(name="Form 10B", parent=cast.year10)

    tree = tree_html(client_for(cast.teacher9).get("/console/").content.decode())

    assert "Year 9" in tree and "Form 9A" in tree
    assert "Year 10" not in tree and "Form 10B" not in tree
    assert str(form9a.uuid) in tree
    assert str(cast.year10.uuid) not in tree


def test_subgroups_nest_under_their_parent(cast):
    UserGroupFactory(name="Form 9A", parent=cast.year9)

    tree = tree_html(client_for(cast.teacher9).get("/console/").content.decode())

    # Form 9A is inside Year 9's <details>, one list level deeper.
    year9_branch = tree.split("Year 9", 1)[1].split("</details>", 1)[0]
    assert "Form 9A" in year9_branch


def test_personal_device_and_watch_groups_have_their_sections(cast):
    mine = UserGroupFactory(name="My worries", owner=cast.teacher9)
    UserGroupFactory(name="Someone else's worries", owner=cast.teacher10)
    suite = DeviceGroupFactory(name="IT Suite")
    StaffAccessFactory(user=cast.teacher9, group=suite)
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True)
    StaffAccessFactory(user=cast.teacher9, group=watch)

    tree = tree_html(client_for(cast.teacher9).get("/console/").content.decode())

    assert "My groups" in tree and str(mine.uuid) in tree
    assert "Someone else" not in tree
    assert "Device groups" in tree and "IT Suite" in tree
    built_in = tree.split("Built in", 1)[1]
    assert "Captures" in built_in and str(watch.uuid) in built_in


def test_a_superuser_does_not_see_others_personal_groups(cast):
    UserGroupFactory(name="Teacher's own list", owner=cast.teacher9)

    tree = tree_html(client_for(cast.admin).get("/console/").content.decode())

    assert "Year 9" in tree and "Year 10" in tree
    assert "Teacher&#x27;s own list" not in tree and "Teacher's own list" not in tree


def test_selected_group_is_highlighted_and_kept_by_the_tabs(cast):
    html = client_for(cast.teacher9).get(f"/console/?group={cast.year9.uuid}").content.decode()

    selected = re.search(r'<a class="tree-link is-selected" href="([^"]+)" aria-current="true">', html)
    assert selected and str(cast.year9.uuid) in selected.group(1)
    assert f'href="/console/thumbnails/?group={cast.year9.uuid}"' in html


def test_selecting_a_group_outside_the_tree_is_404(cast):
    client = client_for(cast.teacher9)
    assert client.get(f"/console/?group={cast.year10.uuid}").status_code == 404
    assert client.get("/console/?group=not-a-uuid").status_code == 404
    assert client.get(f"/console/thumbnails/?group={cast.year10.uuid}").status_code == 404


def test_toolbar_entries_follow_rights(cast):
    teacher = client_for(cast.teacher9).get("/console/").content.decode()
    lead = client_for(cast.lead).get("/console/").content.decode()
    admin = client_for(cast.admin).get("/console/").content.decode()

    for area in ("Monitor", "Captures", "Logs", "Recordings"):
        assert area in teacher
    assert 'href="/console/confide/"' not in teacher
    assert 'href="/console/confide/"' in lead
    assert 'href="/admin/"' not in lead
    assert 'href="/admin/"' in admin


def test_the_frame_polls_for_assistance_requests(cast):
    html = client_for(cast.teacher9).get("/console/").content.decode()

    assert 'id="assistance-slot"' in html
    assert 'hx-get="/console/assistance/"' in html
    assert 'hx-trigger="load, every 10s"' in html


def test_no_inline_scripts_styles_or_handlers(cast):
    html = client_for(cast.lead).get("/console/").content.decode()

    assert "style=" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert re.search(r"\son[a-z]+=", html) is None
    assert "https://" not in html  # every asset is served locally


def _many_groups(count: int, user) -> None:
    for index in range(count):
        parent = UserGroupFactory(name=f"{user.username} house {index}")
        child = UserGroupFactory(name=f"{user.username} house {index} juniors", parent=parent)
        MembershipFactory(group=child, person=PersonFactory())
        StaffAccessFactory(user=user, group=parent)
    UserGroupFactory(name=f"{user.username}'s list", owner=user, kind=GroupKind.USER)


def test_the_tree_costs_the_same_number_of_queries_for_many_groups():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    few, many = StaffUserFactory(username="few"), StaffUserFactory(username="many")
    _many_groups(2, few)
    _many_groups(25, many)

    def frame_queries(user) -> int:
        from django.test import RequestFactory

        from safeguard.console.context import console_context

        request = RequestFactory().get("/console/")
        request.user = user
        with CaptureQueriesContext(connection) as queries:
            frame = console_context(request)["frame"]
        assert frame.user_groups
        return len(queries)

    assert frame_queries(few) == frame_queries(many)
    assert frame_queries(many) <= 6
