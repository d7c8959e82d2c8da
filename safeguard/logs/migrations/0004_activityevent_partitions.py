"""Activity events range-partitioned by month of `occurred_at` on PostgreSQL (issue 8, part 4).

Why: events are the one table that grows without bound (every window, website and print of every
pupil). Partitioned by month, retention drops a whole month's table (instant, no bloat, no
vacuum debt) instead of deleting millions of rows (safeguard.logs.partitions).

What changes on PostgreSQL (SQLite, the embedded default, is left as it is):
- the table becomes `PARTITION BY RANGE (occurred_at)`, one partition per calendar month in UTC
  (`logs_activityevent_pYYYYMM`) plus a DEFAULT partition, so an insert in a month nobody
  created ahead (an agent with a wrong clock) still lands;
- PostgreSQL wants every unique constraint of a partitioned table to include the partition key:
  the primary key becomes (id, occurred_at) and the uuid's unique constraint (uuid, occurred_at).
  Django still sees `id` as the pk (ids stay unique: they come from one sequence) and `uuid` as
  unique (the state of this migration is unchanged). A resend of an event carries the same
  occurred_at, so (uuid, occurred_at) still makes a resend harmless; event_batch_ingest also looks
  the uuids up before inserting. Nothing has a foreign key to this table (checked: no model
  points at ActivityEvent), which PostgreSQL would otherwise refuse;
- `id` takes its values from a sequence owned by the column (identity columns on partitioned
  tables need PostgreSQL 17), starting after the largest existing id;
- every existing row is carried over (months that hold rows get their partition), and the
  indexes and foreign keys are rebuilt under their own names.

The table is locked for the copy: plan the upgrade for a quiet time on a large install (agents
keep their events in their outbox and resend). The reverse turns it back into a plain table.
Table names in the SQL are this module's constants, never input (hence the S608 noqa marks).
"""

from datetime import UTC, datetime

from django.db import migrations

TABLE = "logs_activityevent"
MOVED = "logs_activityevent_unpartitioned"
MONTHS_AHEAD = 3  # the same default as settings.SAFEGUARD_EVENT_PARTITIONS_AHEAD


def _relkind(cursor, name: str) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return row[0] if row else None


def _definitions(cursor, table: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The table's foreign-key and unique constraints, and its other indexes' CREATE statements."""
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY conname",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass) "
        "ORDER BY indexname",
        [table, table],
    )
    return constraints, [row[0] for row in cursor.fetchall()]


def _rebuild(cursor, constraints, indexes, *, unique_with_time: bool) -> None:
    for name, kind, definition in constraints:
        if kind == "u":
            columns = [c.strip() for c in definition[definition.index("(") + 1 : definition.rindex(")")].split(",")]
            columns = [c for c in columns if c != "occurred_at"] + (["occurred_at"] if unique_with_time else [])
            definition = f"UNIQUE ({', '.join(columns)})"
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
    for statement in indexes:  # they name `TABLE`, as captured before the rename
        cursor.execute(statement)


def _drop_id_sequence(cursor, table: str) -> None:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
    if sequence:
        cursor.execute(f"DROP SEQUENCE IF EXISTS {sequence}")


def _month_bounds(month: datetime) -> tuple[str, str]:
    following = (
        month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)
    )
    return month.strftime("%Y-%m-01 00:00:00+00"), following.strftime("%Y-%m-01 00:00:00+00")


def partition(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite (the embedded mode) stays one plain table
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) == "p":
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        constraints, indexes = _definitions(cursor, TABLE)
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {TABLE}")  # noqa: S608
        last_id = cursor.fetchone()[0]
        cursor.execute(f"SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') FROM {TABLE}")  # noqa: S608
        months = {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
        now = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for _ in range(MONTHS_AHEAD + 1):
            months.add(now)
            now = now.replace(year=now.year + 1, month=1) if now.month == 12 else now.replace(month=now.month + 1)

        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {MOVED}")
        _drop_id_sequence(cursor, MOVED)
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {MOVED} INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at)")
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq START WITH {last_id + 1} OWNED BY NONE")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        cursor.execute(f"ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        for month in sorted(months):
            start, end = _month_bounds(month)
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [start, end]
            )
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {MOVED}")  # noqa: S608
        cursor.execute(f"DROP TABLE {MOVED}")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, occurred_at)")
        _rebuild(cursor, constraints, indexes, unique_with_time=True)


def unpartition(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) != "p":
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        constraints, indexes = _definitions(cursor, TABLE)
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {TABLE}")  # noqa: S608
        last_id = cursor.fetchone()[0]
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {MOVED}")
        _drop_id_sequence(cursor, MOVED)
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {MOVED} INCLUDING DEFAULTS)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {MOVED}")  # noqa: S608
        cursor.execute(f"DROP TABLE {MOVED} CASCADE")  # with its partitions
        cursor.execute(
            f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {last_id + 1})"
        )
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        _rebuild(cursor, constraints, indexes, unique_with_time=False)


class Migration(migrations.Migration):
    dependencies = [
        ("logs", "0003_retentionsettings"),
    ]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
