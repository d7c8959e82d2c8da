"""The audit log: audit_record appends rows, and rows can never be changed or deleted."""

import pytest

from safeguard.logs.models import AppendOnlyError, AuditEntry
from safeguard.logs.services import audit_record
from tests.factories import CaptureFactory, StaffUserFactory


@pytest.mark.django_db
def test_audit_record_writes_who_did_what_to_which_object():
    lead = StaffUserFactory(username="lead")

    entry = audit_record(
        actor=lead,
        action="capture.status_changed",
        target_type="capture",
        target_id="1234",
        summary="Status changed from New to Escalated",
        before={"status": "new"},
        after={"status": "escalated"},
    )

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.actor == lead
    assert stored.actor_name == "lead"
    assert (stored.action, stored.target_type, stored.target_id) == ("capture.status_changed", "capture", "1234")
    assert stored.summary == "Status changed from New to Escalated"
    assert stored.before == {"status": "new"}
    assert stored.after == {"status": "escalated"}
    assert stored.created_at is not None


@pytest.mark.django_db
def test_audit_record_names_a_target_object_by_its_public_uuid():
    capture = CaptureFactory()

    entry = audit_record(actor=None, actor_name="system", action="capture.preview_made", target=capture)

    assert entry.target_type == "capture"
    assert entry.target_id == str(capture.uuid)
    assert entry.actor is None and entry.actor_name == "system"


@pytest.mark.django_db
def test_the_actor_name_survives_the_account_being_deleted():
    teacher = StaffUserFactory(username="teacher9")
    entry = audit_record(actor=teacher, action="capture.note_added", target_type="capture", target_id="1")

    teacher.delete()

    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor is None
    assert entry.actor_name == "teacher9"


@pytest.mark.django_db
def test_saving_an_existing_entry_raises_and_changes_nothing():
    entry = audit_record(
        actor=StaffUserFactory(), action="capture.assigned", target_type="capture", target_id="7", summary="original"
    )
    entry.summary = "rewritten history"

    with pytest.raises(AppendOnlyError):
        entry.save()

    assert AuditEntry.objects.get(pk=entry.pk).summary == "original"


@pytest.mark.django_db
def test_deleting_an_entry_raises_and_keeps_it():
    entry = audit_record(actor=StaffUserFactory(), action="capture.assigned", target_type="capture", target_id="7")

    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.get(pk=entry.pk).delete()

    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.django_db
def test_new_entries_keep_being_appended():
    audit_record(actor=None, actor_name="system", action="a", target_type="t", target_id="1")
    audit_record(actor=None, actor_name="system", action="b", target_type="t", target_id="1")

    assert list(AuditEntry.objects.filter(target_id="1").values_list("action", flat=True)) == ["b", "a"]
