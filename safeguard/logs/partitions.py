"""Monthly partitions of the activity events table (PostgreSQL only; SQLite has one plain table).

Migration 0004 makes `logs_activityevent` range-partitioned by `occurred_at`: one table per
calendar month in UTC, named `logs_activityevent_pYYYYMM`, and a DEFAULT partition that catches
whatever falls outside them (an agent whose clock is years off), so an insert never fails.

- `partitions_ensure` creates the partitions of every month from the retention cut-off to a few
  months ahead: daily from Celery beat (logs.tasks.event_partitions_ensure), after every `migrate`
  (post_migrate, see apps.py) and by `manage.py ensure_event_partitions`. Past months matter too:
  an agent that was offline for weeks, or an import, sends events of months gone by, and they
  belong in their month (which retention later drops whole), not in the DEFAULT partition. Rows
  already in the DEFAULT partition for a month being created move into it in the same
  transaction (PostgreSQL refuses the new partition otherwise).
- `partitions_drop_before` is retention's fast path: a month entirely older than the cut-off is
  DETACHed and DROPped (instant, and leaves no dead rows to vacuum) instead of deleted row by row.
  Retention then deletes the remaining rows older than the cut-off (in the boundary month and the
  DEFAULT partition) in batches, as on SQLite.

Both take a transaction-scoped advisory lock, so a migrate, the beat task and retention running
at once take turns instead of racing on the catalog. DDL on the parent waits at most
`LOCK_TIMEOUT` for its lock: better to fail (the task retries) than to queue ingestion behind a
long-running report query.

Table names in the SQL here come from module constants and dates, never from input (hence the
S608 noqa marks): DDL cannot take identifiers as query parameters.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

TABLE = "logs_activityevent"
DEFAULT_PARTITION = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")
# Any constant: serialises our partition DDL across processes (pg_advisory_xact_lock).
_ADVISORY_LOCK_KEY = 0x5AFE_0008
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class MonthPartition:
    name: str
    month: date  # the first day of the month it holds (UTC)

    @property
    def end(self) -> date:
        return add_months(self.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_of(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def _bound(month: date) -> str:
    return f"{month:%Y-%m-%d} 00:00:00+00"


def is_partitioned(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the events table is partitioned (PostgreSQL after migration 0004)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partitions_list(*, using: str = DEFAULT_DB_ALIAS) -> list[MonthPartition]:
    """The monthly partitions attached to the events table, oldest first (the DEFAULT one excluded)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE pg_inherits.inhparent = to_regclass(%s)",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            found.append(MonthPartition(name, date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda partition: partition.month)


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _create(cursor, month: date) -> None:
    """Create `month`'s partition, moving into it any of its rows the DEFAULT partition holds."""
    name = partition_name(month)
    start, end = _bound(month), _bound(add_months(month, 1))
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= %s AND occurred_at < %s "  # noqa: S608
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    # ATTACH builds the parent's indexes and foreign keys on it, and checks the bounds.
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])


# Months kept partitioned behind today when events are kept for ever (no retention period).
MONTHS_BACK_WITHOUT_PERIOD = 12
MONTHS_BACK_MAX = 36


def default_months_back(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Months from the activity events' retention cut-off to this month (read-only: no settings row made)."""
    from safeguard.logs.models import RetentionSettings

    row = RetentionSettings.objects.using(using).filter(pk=1).values_list("activity_events_days", flat=True)
    days = row.first() if row.exists() else RetentionSettings._meta.get_field("activity_events_days").default
    if days is None:
        return MONTHS_BACK_WITHOUT_PERIOD
    return min(days // 28 + 1, MONTHS_BACK_MAX)


def partitions_ensure(
    *,
    months_ahead: int | None = None,
    months_back: int | None = None,
    now: datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> list[str]:
    """Make sure the partitions from `months_back` months ago to `months_ahead` months ahead exist.

    Defaults: SAFEGUARD_EVENT_PARTITIONS_AHEAD ahead, and back to the activity events' retention
    cut-off. Returns the names created. Idempotent: a second call creates nothing. Does nothing
    where the table is not partitioned.
    """
    if not is_partitioned(using=using):
        return []
    if months_ahead is None:
        months_ahead = settings.SAFEGUARD_EVENT_PARTITIONS_AHEAD
    if months_back is None:
        months_back = default_months_back(using=using)
    first = month_of(now or timezone.now())
    wanted = [add_months(first, offset) for offset in range(-months_back, months_ahead + 1)]
    created = []
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _lock(cursor)
        cursor.execute("SELECT to_regclass(%s)", [DEFAULT_PARTITION])
        if cursor.fetchone()[0] is None:
            cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
            created.append(DEFAULT_PARTITION)
        existing = {partition.month for partition in partitions_list(using=using)}
        for month in wanted:
            if month not in existing:
                _create(cursor, month)
                created.append(partition_name(month))
    return created


@dataclass(frozen=True)
class DroppedPartition:
    name: str
    month: date
    rows: int


def partitions_drop_before(cutoff: datetime, *, using: str = DEFAULT_DB_ALIAS) -> list[DroppedPartition]:
    """Detach and drop every monthly partition whose whole month ends at or before `cutoff`.

    Rows of the month that straddles the cut-off stay (retention deletes those past it one by
    one). Each month goes in its own transaction: a lock timeout on one leaves the others done.
    """
    if not is_partitioned(using=using):
        return []
    dropped = []
    for partition in partitions_list(using=using):
        if datetime(partition.end.year, partition.end.month, 1, tzinfo=UTC) > cutoff:
            break  # sorted oldest first: the rest are newer
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            _lock(cursor)
            cursor.execute("SELECT to_regclass(%s)", [partition.name])
            if cursor.fetchone()[0] is None:
                continue  # another run dropped it meanwhile
            # PostgreSQL will not drop a table with foreign-key checks still pending in this
            # transaction (rows inserted earlier in it, as in a test): run them first, as
            # Django's own check_constraints does, then go back to Django's deferred default.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {partition.name}")
            cursor.execute(f"SELECT count(*) FROM {partition.name}")  # noqa: S608
            rows = cursor.fetchone()[0]
            cursor.execute(f"DROP TABLE {partition.name}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        dropped.append(DroppedPartition(partition.name, partition.month, rows))
    return dropped
