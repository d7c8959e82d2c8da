"""The users view (/console/): people in the selected group, red with counts when they have unreviewed captures."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from safeguard.captures.models import CaptureStatus
from safeguard.policies.models import Severity
from tests.factories import (
    CaptureFactory,
    DeviceGroupFactory,
    KeywordFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def row_of(html: str, person) -> str:
    """The <tr> of `person` in the users table."""
    marker = f'data-person="{person.uuid}"'
    assert marker in html, f"{person} is not listed"
    start = html.rindex("<tr", 0, html.index(marker))
    return html[start : html.index("</tr>", start)]


def capture(person, severity: str, status: str = CaptureStatus.NEW):
    return CaptureFactory(person=person, keyword=KeywordFactory(severity=severity), status=status)


def test_a_pupil_with_unreviewed_captures_is_red_with_an_icon_text_and_counts_by_severity(cast):
    capture(cast.pupil9, Severity.SEVERE)
    capture(cast.pupil9, Severity.HIGH)
    capture(cast.pupil9, Severity.HIGH)
    capture(cast.pupil9, Severity.LOW, status=CaptureStatus.RESOLVED_ACTION)  # reviewed: not counted

    html = client_for(cast.lead).get("/console/").content.decode()

    red = row_of(html, cast.pupil9)
    assert "has-unreviewed" in red
    assert '<use href="/static/core/icons.svg#alert">' in red  # an icon, not colour alone
    assert "3 unreviewed" in red
    assert "1 Severe" in red and "2 High" in red
    assert "Low" not in red
    assert red.index("1 Severe") < red.index("2 High")  # most severe first


def test_a_pupil_without_unreviewed_captures_is_not_red(cast):
    capture(cast.pupil10, Severity.HIGH, status=CaptureStatus.UNDER_REVIEW)

    row = row_of(client_for(cast.lead).get("/console/").content.decode(), cast.pupil10)

    assert "has-unreviewed" not in row
    assert "None" in row


def test_people_with_unreviewed_captures_come_first(cast):
    capture(cast.pupil10, Severity.LOW)

    html = client_for(cast.lead).get("/console/").content.decode()

    assert html.index(str(cast.pupil10.uuid)) < html.index(str(cast.pupil9.uuid))


def test_rows_link_to_the_persons_timeline_and_captures(cast):
    row = row_of(client_for(cast.teacher9).get("/console/").content.decode(), cast.pupil9)

    assert f'href="/console/logs/?person={cast.pupil9.uuid}&amp;tab=timeline"' in row
    assert f'href="/console/captures/?person={cast.pupil9.uuid}"' in row


def test_the_device_a_person_is_using_links_to_the_computer_view(cast):
    cast.device9.current_person = cast.pupil9
    cast.device9.save()

    row = row_of(client_for(cast.teacher9).get("/console/").content.decode(), cast.pupil9)

    assert f'href="/console/devices/{cast.device9.uuid}/"' in row and "Y9-PC01" in row


def test_selecting_a_group_shows_its_members_and_its_subgroups_members(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    in_form = PersonFactory(display_name="Form Pupil")
    MembershipFactory(group=form9a, person=in_form)

    html = client_for(cast.lead).get(f"/console/?group={cast.year9.uuid}").content.decode()

    assert str(cast.pupil9.uuid) in html and str(in_form.uuid) in html
    assert str(cast.pupil10.uuid) not in html
    assert "2 people" in html


def test_a_personal_group_shows_only_the_members_the_owner_may_see(cast):
    worries = UserGroupFactory(name="My worries", owner=cast.teacher9)
    MembershipFactory(group=worries, person=cast.pupil9)
    MembershipFactory(group=worries, person=cast.pupil10)
    capture(cast.pupil10, Severity.SEVERE)

    html = client_for(cast.teacher9).get(f"/console/?group={worries.uuid}").content.decode()

    assert str(cast.pupil9.uuid) in html
    assert "Ten Pupil" not in html and "y10pupil" not in html
    assert "1 person" in html
    assert "unreviewed" not in html.split("<tbody>", 1)[1]


def test_a_device_group_shows_the_people_using_its_devices(cast):
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device9)
    StaffAccessFactory(user=cast.lead, group=suite)
    cast.device9.current_person = cast.pupil10
    cast.device9.save()

    html = client_for(cast.lead).get(f"/console/?group={suite.uuid}").content.decode()

    assert str(cast.pupil10.uuid) in html
    assert str(cast.pupil9.uuid) not in html


def test_teacher9_cannot_see_year10_people_or_their_counts(cast):
    capture(cast.pupil10, Severity.SEVERE)
    capture(cast.pupil10, Severity.SEVERE)
    client = client_for(cast.teacher9)

    html = client.get("/console/").content.decode()

    assert "Ten Pupil" not in html and "y10pupil" not in html and str(cast.pupil10.uuid) not in html
    assert "1 person" in html
    assert "unreviewed" not in html.split("<tbody>", 1)[1]  # pupil10's two captures are counted nowhere
    assert client.get(f"/console/?group={cast.year10.uuid}").status_code == 404


def test_an_outsider_sees_no_one(cast):
    capture(cast.pupil9, Severity.HIGH)

    html = client_for(cast.outsider).get("/console/").content.decode()

    assert "No one to show" in html
    assert "Nine Pupil" not in html and "Ten Pupil" not in html


def _count_queries(user) -> int:
    client = client_for(user)
    client.get("/console/")  # warm the session
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/").status_code == 200
    return len(queries)


def test_the_query_count_does_not_grow_with_the_number_of_people(cast):
    few = _count_queries(cast.teacher9)
    for _ in range(15):
        person = PersonFactory()
        MembershipFactory(group=cast.year9, person=person)
        capture(person, Severity.HIGH)

    assert _count_queries(cast.teacher9) == few
