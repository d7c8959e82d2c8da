"""The heartbeat answer lists the current user's groups for the agent's read-only "Personal Groups" menu."""

import pytest

from tests.factories import MembershipFactory, PersonFactory, StaffUserFactory, UserGroupFactory

URL = "/api/v1/agent/heartbeat"


def beat(client, **body):
    response = client.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_the_current_users_groups_are_listed_by_name(device_client):
    pupil = PersonFactory(username="SCHOOL\\grouped")
    for name in ("Year 9", "Chess club"):
        MembershipFactory(group=UserGroupFactory(name=name), person=pupil)
    MembershipFactory(group=UserGroupFactory(name="Year 10"))  # someone else's group

    assert beat(device_client, user="SCHOOL\\grouped")["groups"] == ["Chess club", "Year 9"]


@pytest.mark.django_db
def test_watch_groups_and_staff_personal_groups_are_never_shown(device_client):
    pupil = PersonFactory(username="SCHOOL\\watched")
    MembershipFactory(group=UserGroupFactory(name="Form 9B"), person=pupil)
    MembershipFactory(group=UserGroupFactory(name="Extra scrutiny", is_watch_group=True), person=pupil)
    MembershipFactory(group=UserGroupFactory(name="Ms Reed's concerns", owner=StaffUserFactory()), person=pupil)

    assert beat(device_client, user="SCHOOL\\watched")["groups"] == ["Form 9B"]


@pytest.mark.django_db
def test_no_user_no_groups_and_the_last_known_user_counts(device_client):
    assert beat(device_client)["groups"] == []
    pupil = PersonFactory(username="SCHOOL\\known")
    MembershipFactory(group=UserGroupFactory(name="Art"), person=pupil)
    beat(device_client, user="SCHOOL\\known")

    assert beat(device_client)["groups"] == ["Art"]  # the user was omitted: the last known one stays


@pytest.mark.django_db
def test_the_groups_follow_the_user_who_is_logged_on(device_client):
    first, second = PersonFactory(username="SCHOOL\\first"), PersonFactory(username="SCHOOL\\second")
    MembershipFactory(group=UserGroupFactory(name="Group One"), person=first)
    MembershipFactory(group=UserGroupFactory(name="Group Two"), person=second)

    assert beat(device_client, user="SCHOOL\\first")["groups"] == ["Group One"]
    assert beat(device_client, user="SCHOOL\\second")["groups"] == ["Group Two"]
