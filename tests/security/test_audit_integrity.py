"""The audit log is append-only in PostgreSQL itself (logs migration 0005), not only in Python.

A trigger refuses UPDATE and DELETE of logs_auditentry from any query, raw SQL included; only
retention (with its transaction-local flag) deletes rows past the period, and deleting a staff
account only clears the actor link (the row keeps the name). These tests need PostgreSQL (the
trigger does not exist on SQLite, where the model's own refusal is tested in tests/logs/test_audit.py).
"""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from safeguard.logs.models import AuditEntry, RetentionSettings
from safeguard.logs.retention import retention_apply
from tests.factories import AuditEntryFactory, StaffUserFactory
from tests.workers import require_postgresql

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql():
    require_postgresql()


def refused(operation) -> str:
    """Run `operation` in a savepoint; the database's refusal message (the test fails if it succeeds)."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        operation()
    return str(caught.value)


def test_the_trigger_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'logs_auditentry'::regclass AND NOT tgisinternal")
        assert [row[0] for row in cursor.fetchall()] == ["logs_auditentry_append_only"]


def test_update_through_the_orm_is_refused():
    entry = AuditEntryFactory(summary="original")

    message = refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten"))

    assert "append-only" in message and "UPDATE" in message
    assert AuditEntry.objects.get(pk=entry.pk).summary == "original"


def test_update_in_raw_sql_is_refused():
    entry = AuditEntryFactory(action="capture.status_changed")

    def rewrite():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE logs_auditentry SET action = 'nothing' WHERE id = %s", [entry.pk])

    assert "append-only" in refused(rewrite)
    assert AuditEntry.objects.get(pk=entry.pk).action == "capture.status_changed"


def test_backdating_is_refused():
    entry = AuditEntryFactory()

    refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=9999)))


def test_delete_through_the_orm_is_refused():
    entry = AuditEntryFactory()

    message = refused(lambda: AuditEntry.objects.filter(pk=entry.pk).delete())

    assert "append-only" in message and "DELETE" in message
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_delete_in_raw_sql_is_refused():
    AuditEntryFactory.create_batch(3)

    def wipe():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM logs_auditentry")

    refused(wipe)
    assert AuditEntry.objects.count() == 3


def test_the_retention_flag_allows_delete_only():
    entry = AuditEntryFactory(summary="original")

    def update_with_the_flag():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL safeguard.audit_retention = 'on'")
        AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten")

    refused(update_with_the_flag)
    assert AuditEntry.objects.get(pk=entry.pk).summary == "original"


def test_retention_deletes_entries_past_the_period_and_the_flag_does_not_outlive_it():
    RetentionSettings.load()
    now = timezone.now()
    old = AuditEntryFactory(created_at=now - timedelta(days=2191))
    kept = AuditEntryFactory(created_at=now - timedelta(days=2189))

    report = retention_apply(now=now)

    assert report["audit_log"] == {"rows": 1, "files": 0}
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.filter(pk=kept.pk).exists()
    assert AuditEntry.objects.filter(action="retention.applied").exists()
    # After retention (same test transaction), a delete is refused again.
    refused(lambda: AuditEntry.objects.filter(pk=kept.pk).delete())


def test_deleting_a_staff_account_keeps_its_entries_with_the_name():
    user = StaffUserFactory(username="former.teacher")
    entry = AuditEntryFactory(actor=user, actor_name="former.teacher")

    user.delete()

    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor_id is None and entry.actor_name == "former.teacher"


def test_clearing_the_actor_does_not_let_anything_else_change():
    user = StaffUserFactory()
    entry = AuditEntryFactory(actor=user, summary="original")

    refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(actor=None, summary="rewritten"))
    refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(actor=StaffUserFactory()))
    assert AuditEntry.objects.get(pk=entry.pk).summary == "original"


def test_new_entries_are_still_appended():
    AuditEntryFactory()
    AuditEntryFactory()

    assert AuditEntry.objects.count() == 2
