"""The audit log is append-only in the database itself (PostgreSQL; issue 9, part 7).

AuditEntry.save()/delete() already refuse changes in Python, but a queryset .update() or
.delete(), raw SQL or another program bypasses them. On PostgreSQL a trigger refuses every
UPDATE and DELETE of logs_auditentry, with two exceptions, each narrow:

- retention (safeguard.logs.retention) deletes rows past the audit log's own period: it sets
  `SET LOCAL safeguard.audit_retention = 'on'` inside the deleting transaction, and only then
  is a DELETE let through (the setting ends with the transaction);
- deleting a staff account: the actor foreign key is ON DELETE SET NULL (the row keeps
  actor_name, so it still says who acted), so an UPDATE that only clears actor_id, leaving every
  other column as it was, is let through.

TRUNCATE is not refused: it needs the table's owner, who can also drop the trigger, and the test
suite's flush between transactional tests uses it. The guard is against the application and
its users, not against the database's owner.

SQLite (the embedded mode) has no such trigger; the model's own refusal applies there.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION logs_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('safeguard.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
        AND ROW(NEW.id, NEW.created_at, NEW.actor_name, NEW.action, NEW.target_type, NEW.target_id,
                NEW.summary, NEW.before, NEW.after)
            IS NOT DISTINCT FROM
            ROW(OLD.id, OLD.created_at, OLD.actor_name, OLD.action, OLD.target_type, OLD.target_id,
                OLD.summary, OLD.before, OLD.after) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % of logs_auditentry refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER logs_auditentry_append_only
BEFORE UPDATE OR DELETE ON logs_auditentry
FOR EACH ROW EXECUTE FUNCTION logs_auditentry_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS logs_auditentry_append_only ON logs_auditentry;
DROP FUNCTION IF EXISTS logs_auditentry_append_only();
"""


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP, params=None)
    schema_editor.execute(FUNCTION, params=None)  # None: the % in RAISE is not a placeholder
    schema_editor.execute(TRIGGER, params=None)


def uninstall(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("logs", "0004_activityevent_partitions")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
