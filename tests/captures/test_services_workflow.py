"""The review workflow of a capture: status, assignee, notes and "move person to group".

Every change is a row in the audit log (who, before → after), written in the same transaction
as the change itself; nobody without the manage right over the capture can make one.
"""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus
from safeguard.captures.selectors import capture_assignee_choices, capture_history, capture_move_target_groups
from safeguard.captures.services import (
    capture_add_note,
    capture_assign,
    capture_move_person_to_group,
    capture_set_status,
)
from safeguard.groups.models import Membership
from safeguard.groups.services import person_move_to_group
from safeguard.logs.models import AuditEntry
from tests.factories import (
    CaptureFactory,
    DeviceGroupFactory,
    MembershipFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def capture(cast):
    return CaptureFactory(person=cast.pupil9, device=cast.device9)


def _fail_audit_inserts(execute, sql, params, many, context):
    if "INSERT INTO" in sql and "logs_auditentry" in sql:
        raise RuntimeError("the audit log is unavailable")
    return execute(sql, params, many, context)


# --- status ------------------------------------------------------------------------------------


def test_changing_the_status_writes_before_and_after(cast, capture):
    changed = capture_set_status(capture=capture, status=CaptureStatus.UNDER_REVIEW, actor=cast.teacher9)

    assert changed is True
    assert Capture.objects.get(pk=capture.pk).status == CaptureStatus.UNDER_REVIEW
    entry = AuditEntry.objects.get(action="capture.status_changed")
    assert entry.actor == cast.teacher9 and entry.actor_name == "teacher9"
    assert (entry.target_type, entry.target_id) == ("capture", str(capture.uuid))
    assert entry.before == {"status": "new"} and entry.after == {"status": "under_review"}
    assert entry.summary == "Status changed from New to Under review"


def test_the_first_review_is_the_audit_row_that_leaves_new(cast, capture):
    capture_set_status(capture=capture, status=CaptureStatus.ESCALATED, actor=cast.lead)
    capture_set_status(capture=capture, status=CaptureStatus.RESOLVED_ACTION, actor=cast.lead)

    rows = list(AuditEntry.objects.filter(action="capture.status_changed").order_by("created_at", "id"))
    first_review = [row for row in rows if row.before == {"status": "new"}]
    assert len(first_review) == 1 and first_review[0] == rows[0]


@pytest.mark.parametrize(
    "path",
    [
        ["under_review", "escalated", "resolved_action"],
        ["resolved_false_positive", "escalated"],  # reopened when new facts arrive
        ["escalated", "under_review", "resolved_false_positive"],
    ],
)
def test_any_status_but_new_can_follow_any_other(cast, capture, path):
    for status in path:
        assert capture_set_status(capture=capture, status=status, actor=cast.lead)
    assert Capture.objects.get(pk=capture.pk).status == path[-1]
    assert AuditEntry.objects.filter(action="capture.status_changed").count() == len(path)


def test_nothing_goes_back_to_new(cast, capture):
    capture_set_status(capture=capture, status=CaptureStatus.UNDER_REVIEW, actor=cast.lead)

    with pytest.raises(ValidationError):
        capture_set_status(capture=capture, status=CaptureStatus.NEW, actor=cast.lead)
    assert Capture.objects.get(pk=capture.pk).status == CaptureStatus.UNDER_REVIEW


def test_an_unknown_status_is_refused(cast, capture):
    with pytest.raises(ValidationError):
        capture_set_status(capture=capture, status="deleted", actor=cast.lead)
    assert not AuditEntry.objects.exists()


def test_setting_the_same_status_changes_nothing(cast, capture):
    capture_set_status(capture=capture, status=CaptureStatus.ESCALATED, actor=cast.lead)

    assert capture_set_status(capture=capture, status=CaptureStatus.ESCALATED, actor=cast.lead) is False
    assert AuditEntry.objects.filter(action="capture.status_changed").count() == 1


def test_staff_without_the_manage_right_cannot_change_anything(cast, capture):
    viewer = StaffAccessFactory(group=cast.year9, can_manage_captures=False).user

    for actor in (cast.teacher10, viewer, cast.outsider, cast.confide_viewer):
        with pytest.raises(PermissionDenied):
            capture_set_status(capture=capture, status=CaptureStatus.ESCALATED, actor=actor)
        with pytest.raises(PermissionDenied):
            capture_add_note(capture=capture, author=actor, text="Looked at it.")
        with pytest.raises(PermissionDenied):
            capture_assign(capture=capture, assignee=None, actor=actor)
    capture.refresh_from_db()
    assert capture.status == CaptureStatus.NEW
    assert not CaptureNote.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_status_change_and_its_audit_row_are_all_or_nothing(cast, capture):
    with connection.execute_wrapper(_fail_audit_inserts), pytest.raises(RuntimeError):
        capture_set_status(capture=capture, status=CaptureStatus.ESCALATED, actor=cast.lead)

    assert Capture.objects.get(pk=capture.pk).status == CaptureStatus.NEW


# --- assignee ----------------------------------------------------------------------------------


def test_a_capture_is_assigned_to_staff_who_can_manage_it(cast, capture):
    assert capture_assign(capture=capture, assignee=cast.teacher9, actor=cast.lead) is True

    assert Capture.objects.get(pk=capture.pk).assignee == cast.teacher9
    entry = AuditEntry.objects.get(action="capture.assigned")
    assert entry.before == {"assignee": None} and entry.after == {"assignee": "teacher9"}
    assert entry.actor == cast.lead


def test_reassigning_and_unassigning_record_who_had_it(cast, capture):
    capture_assign(capture=capture, assignee=cast.teacher9, actor=cast.lead)
    capture_assign(capture=capture, assignee=cast.lead, actor=cast.lead)
    capture_assign(capture=capture, assignee=None, actor=cast.lead)

    rows = AuditEntry.objects.filter(action="capture.assigned").order_by("id")
    assert [(row.before, row.after) for row in rows] == [
        ({"assignee": None}, {"assignee": "teacher9"}),
        ({"assignee": "teacher9"}, {"assignee": "lead"}),
        ({"assignee": "lead"}, {"assignee": None}),
    ]
    assert capture_assign(capture=capture, assignee=None, actor=cast.lead) is False


def test_a_capture_cannot_go_to_someone_who_cannot_manage_it(cast, capture):
    viewer = StaffAccessFactory(group=cast.year9, can_manage_captures=False).user
    inactive = StaffAccessFactory(group=cast.year9, user=StaffUserFactory(is_active=False)).user

    for assignee in (cast.teacher10, viewer, cast.outsider, inactive):
        with pytest.raises(ValidationError):
            capture_assign(capture=capture, assignee=assignee, actor=cast.lead)
    assert Capture.objects.get(pk=capture.pk).assignee is None


def test_the_assignee_choices_are_the_staff_who_can_manage_the_capture(cast, capture):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    MembershipFactory(group=form9a, person=cast.pupil9)
    tutor = StaffAccessFactory(group=form9a).user  # access to a subgroup the pupil is in
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device9)
    technician = StaffAccessFactory(group=suite).user  # manages what happens on the suite's devices
    StaffAccessFactory(group=cast.year9, can_manage_captures=False)  # view only

    choices = set(capture_assignee_choices(capture=capture))

    assert choices == {cast.lead, cast.teacher9, tutor, technician, cast.admin}
    assert cast.teacher10 not in choices


# --- notes -------------------------------------------------------------------------------------


def test_a_note_is_stored_with_its_author_and_audited(cast, capture):
    note = capture_add_note(capture=capture, author=cast.teacher9, text="  Spoke to the pupil at break.  ")

    assert note.text == "Spoke to the pupil at break."
    assert note.author == cast.teacher9 and note.capture == capture
    entry = AuditEntry.objects.get(action="capture.note_added")
    assert entry.after == {"text": "Spoke to the pupil at break."} and entry.actor == cast.teacher9


def test_hostile_text_in_a_note_is_stored_as_written(cast, capture):
    note = capture_add_note(capture=capture, author=cast.lead, text="<script>alert(1)</script>")

    assert CaptureNote.objects.get(pk=note.pk).text == "<script>alert(1)</script>"


@pytest.mark.parametrize("text", ["", "   \n ", "\x00", "x" * 5001])
def test_empty_or_overlong_notes_are_refused(cast, capture, text):
    with pytest.raises(ValidationError):
        capture_add_note(capture=capture, author=cast.lead, text=text)
    assert not CaptureNote.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_note_and_its_audit_row_are_all_or_nothing(cast, capture):
    with connection.execute_wrapper(_fail_audit_inserts), pytest.raises(RuntimeError):
        capture_add_note(capture=capture, author=cast.lead, text="Will not be kept.")

    assert not CaptureNote.objects.exists()


# --- move person to group ------------------------------------------------------------------------


def test_moving_a_person_adds_them_to_the_group_and_keeps_their_year_group(cast, capture):
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True, parent=cast.year9)

    assert capture_move_person_to_group(capture=capture, group=watch, actor=cast.teacher9) is True

    assert set(Membership.objects.filter(person=cast.pupil9).values_list("group__name", flat=True)) == {
        "Year 9",
        "Watch Group",
    }
    person_row = AuditEntry.objects.get(action="person.moved_to_group")
    assert (person_row.target_type, person_row.target_id) == ("person", str(cast.pupil9.uuid))
    assert person_row.after["group"] == str(watch.uuid)
    capture_row = AuditEntry.objects.get(action="capture.person_moved")
    assert capture_row.target_id == str(capture.uuid) and capture_row.actor == cast.teacher9
    assert capture_row in capture_history(capture=capture)


def test_moving_into_a_group_they_are_in_changes_nothing(cast):
    assert person_move_to_group(person=cast.pupil9, group=cast.year9, moved_by=cast.lead) is False
    assert not AuditEntry.objects.filter(action="person.moved_to_group").exists()


def test_people_only_move_into_user_groups():
    device_group = DeviceGroupFactory()
    from tests.factories import PersonFactory

    with pytest.raises(ValidationError):
        person_move_to_group(person=PersonFactory(), group=device_group)
    assert not Membership.objects.filter(group=device_group).exists()


def test_a_teacher_cannot_move_a_pupil_into_a_group_they_cannot_see(cast, capture):
    with pytest.raises(ValidationError):
        capture_move_person_to_group(capture=capture, group=cast.year10, actor=cast.teacher9)
    assert not Membership.objects.filter(group=cast.year10, person=cast.pupil9).exists()
    assert not AuditEntry.objects.exists()


def test_the_move_targets_are_visible_user_groups_and_own_personal_groups(cast):
    mine = UserGroupFactory(name="My worries", owner=cast.teacher9)
    UserGroupFactory(name="Someone else's", owner=cast.teacher10)
    DeviceGroupFactory(name="Room 9")

    assert list(capture_move_target_groups(user=cast.teacher9)) == [mine, cast.year9]
    assert set(capture_move_target_groups(user=cast.lead)) == {cast.year9, cast.year10}


def test_the_history_lists_every_change_oldest_first(cast, capture):
    capture_set_status(capture=capture, status=CaptureStatus.UNDER_REVIEW, actor=cast.lead)
    capture_assign(capture=capture, assignee=cast.teacher9, actor=cast.lead)
    capture_add_note(capture=capture, author=cast.teacher9, text="Checked in with the pupil.")
    CaptureFactory(person=cast.pupil9)  # another capture's rows are not this one's history

    assert [entry.action for entry in capture_history(capture=capture)] == [
        "capture.status_changed",
        "capture.assigned",
        "capture.note_added",
    ]
