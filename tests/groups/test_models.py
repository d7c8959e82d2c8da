"""Database constraints of the groups app: the rules hold even when code forgets them."""

import pytest
from django.db import IntegrityError, transaction

from safeguard.groups.models import EnrolmentCode, GroupKind, Membership, MonitoringGroup, Person, StaffAccess
from tests.factories import (
    DeviceFactory,
    DeviceGroupFactory,
    PersonFactory,
    StaffAccessFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db


def assert_refused(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_person_usernames_are_unique_ignoring_case():
    PersonFactory(username="SCHOOL\\JSmith")
    assert_refused(lambda: Person.objects.create(username="school\\jsmith"))


def test_person_username_cannot_be_empty():
    assert_refused(lambda: Person.objects.create(username=""))


def test_group_names_are_unique_among_siblings_and_at_the_root():
    year9 = UserGroupFactory(name="Year 9")
    UserGroupFactory(name="Form 9A", parent=year9)
    assert_refused(lambda: MonitoringGroup.objects.create(name="Form 9A", parent=year9, kind=GroupKind.USER))
    assert_refused(lambda: MonitoringGroup.objects.create(name="Year 9", kind=GroupKind.USER))


def test_a_user_group_and_a_device_group_may_share_a_name():
    UserGroupFactory(name="Library")
    DeviceGroupFactory(name="Library")
    assert MonitoringGroup.objects.filter(name="Library").count() == 2


def test_membership_holds_a_person_or_a_device_never_both_or_neither():
    group = UserGroupFactory()
    person, device = PersonFactory(), DeviceFactory()
    assert_refused(lambda: Membership.objects.create(group=group, person=person, device=device))
    assert_refused(lambda: Membership.objects.create(group=group))


def test_a_person_is_in_a_group_once():
    group, person = UserGroupFactory(), PersonFactory()
    Membership.objects.create(group=group, person=person)
    assert_refused(lambda: Membership.objects.create(group=group, person=person))


def test_staff_access_is_one_row_per_user_and_group():
    access = StaffAccessFactory()
    assert_refused(lambda: StaffAccess.objects.create(user=access.user, group=access.group))


def test_enrolment_code_cannot_be_used_more_than_its_cap():
    code = EnrolmentCode.objects.create(code_hash="a" * 64, code_hint="AAAA", max_uses=1)
    EnrolmentCode.objects.filter(pk=code.pk).update(uses=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        EnrolmentCode.objects.filter(pk=code.pk).update(uses=2)
