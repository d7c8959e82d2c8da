"""The access rule: staff see the people, devices, captures and events of their groups and subgroups."""

import pytest
from django.http import Http404

from safeguard.captures.models import Capture
from safeguard.core import access
from safeguard.logs.models import ActivityEvent
from tests.factories import (
    ActivityEventFactory,
    CaptureFactory,
    DeviceFactory,
    DeviceGroupFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db


def test_a_teacher_sees_their_group_and_its_subgroups_only(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    in_form = PersonFactory()
    MembershipFactory(group=form9a, person=in_form)

    people = set(access.visible_people(cast.teacher9))

    assert people == {cast.pupil9, in_form}
    assert cast.pupil10 not in people


def test_the_lead_sees_every_group_and_an_outsider_none(cast):
    assert set(access.visible_people(cast.lead)) == {cast.pupil9, cast.pupil10}
    assert not access.visible_people(cast.outsider).exists()
    assert not access.visible_group_ids(cast.outsider)


def test_a_superuser_sees_every_group(cast):
    assert access.visible_group_ids(cast.admin) >= {cast.year9.pk, cast.year10.pk}


def test_rights_are_checked_separately(cast):
    assert not access.visible_people(cast.confide_viewer, "view_captures").exists()
    assert set(access.visible_people(cast.confide_viewer, "confide")) == {cast.pupil9, cast.pupil10}
    assert access.has_right(cast.confide_viewer, "confide")
    assert not access.has_right(cast.teacher9, "confide")


def test_captures_are_scoped_by_person(cast):
    mine = CaptureFactory(person=cast.pupil9)
    CaptureFactory(person=cast.pupil10)

    scoped = access.scope_by_person_or_device(Capture.objects.all(), cast.teacher9)

    assert list(scoped) == [mine]


def test_device_group_access_shows_what_happens_on_those_devices():
    suite = DeviceGroupFactory(name="IT Suite")
    device = DeviceFactory()
    MembershipFactory(group=suite, person=None, device=device)
    technician = StaffAccessFactory(group=suite).user
    stranger = PersonFactory()
    on_suite = ActivityEventFactory(device=device, person=stranger)
    ActivityEventFactory(person=stranger)  # elsewhere

    assert list(access.scope_by_person_or_device(ActivityEvent.objects.all(), technician)) == [on_suite]
    assert list(access.visible_devices(technician)) == [device]
    assert not access.visible_people(technician).exists()


def test_a_device_is_visible_while_a_visible_person_uses_it(cast):
    cast.device10.current_person = cast.pupil9
    cast.device10.save()

    assert cast.device10 in access.visible_devices(cast.teacher9)
    assert cast.device10 not in access.visible_devices(cast.teacher10)


def test_get_or_404_hides_objects_outside_scope(cast):
    other = CaptureFactory(person=cast.pupil10)
    scoped = access.scope_by_person_or_device(Capture.objects.all(), cast.teacher9)
    with pytest.raises(Http404):
        access.get_or_404(scoped, uuid=other.uuid)


def test_personal_groups_grant_nothing(cast):
    personal = UserGroupFactory(name="My worries", owner=cast.teacher9)
    MembershipFactory(group=personal, person=cast.pupil10)

    assert cast.pupil10 not in access.visible_people(cast.teacher9)


def test_access_is_computed_once_per_request_user(cast, django_assert_num_queries):
    access.visible_group_ids(cast.teacher9)
    with django_assert_num_queries(0):
        access.visible_group_ids(cast.teacher9)
