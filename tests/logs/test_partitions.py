"""Monthly partitions of activity events (safeguard.logs.partitions, migration 0004).

Specification: on PostgreSQL the events table is range-partitioned by month of `occurred_at`,
with this month's and the next months' partitions created ahead (by the migration, `migrate`,
the daily beat task and a management command) and a DEFAULT partition, so an insert in any month
lands; creating a month moves its rows out of the DEFAULT partition; retention drops the months
wholly past the period (audited) and deletes rows only in the month that straddles the cut-off;
everything is idempotent; an upgrade from the plain table keeps every row. On SQLite (the
embedded default) the table stays plain and retention deletes rows, as before.

Tests named `..._on_postgresql` fail (never skip) on SQLite: run them with DATABASE_URL set.
"""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from safeguard.logs import tasks
from safeguard.logs.models import ActivityEvent, AuditEntry, RetentionSettings
from safeguard.logs.partitions import (
    DEFAULT_PARTITION,
    add_months,
    is_partitioned,
    month_of,
    partition_name,
    partitions_ensure,
    partitions_list,
)
from safeguard.logs.retention import retention_apply, retention_plan
from tests.factories import ActivityEventFactory, DeviceFactory, PersonFactory
from tests.workers import require_postgresql

pytestmark = pytest.mark.django_db


def at(year: int, month: int, day: int = 1, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def months_held() -> list[date]:
    return [partition.month for partition in partitions_list()]


def partition_holding(event: ActivityEvent) -> str:
    """The table a row is physically stored in (tableoid)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM logs_activityevent WHERE id = %s", [event.pk])
        return cursor.fetchone()[0]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


# --- both databases -------------------------------------------------------------------------------


def test_partitioned_on_postgresql_and_one_plain_table_on_sqlite():
    assert is_partitioned() is (connection.vendor == "postgresql")
    if connection.vendor == "sqlite":
        # Nothing to create or drop: the embedded mode keeps one table and deletes rows.
        assert partitions_ensure() == []
        call_command("ensure_event_partitions")


def test_retention_deletes_only_events_past_the_period_on_either_database():
    RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": 30})
    now = timezone.now()
    old = ActivityEventFactory(occurred_at=now - timedelta(days=31))
    recent = ActivityEventFactory(occurred_at=now - timedelta(days=29))

    report = retention_apply(now=now)

    assert report["activity_events"]["rows"] == 1
    assert list(ActivityEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not ActivityEvent.objects.filter(pk=old.pk).exists()


def test_the_beat_schedule_ensures_partitions_daily(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["event-partitions-ensure"]
    assert entry["task"] == tasks.event_partitions_ensure.name
    assert settings.SAFEGUARD_EVENT_PARTITIONS_AHEAD == 3


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_the_migration_left_this_month_and_the_next_three_created_on_postgresql():
    require_postgresql()
    this_month = month_of(timezone.now())
    assert set(months_held()) >= {add_months(this_month, offset) for offset in range(4)}
    assert table_exists(DEFAULT_PARTITION)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'logs_activityevent'::regclass "
            "AND contype IN ('p', 'u') ORDER BY contype"
        )
        assert [row[0] for row in cursor.fetchall()] == ["PRIMARY KEY (id, occurred_at)", "UNIQUE (uuid, occurred_at)"]


def test_ensure_creates_the_coming_months_once_on_postgresql():
    require_postgresql()
    later = at(2031, 11, 20)

    created = partitions_ensure(now=later, months_ahead=2, months_back=0)

    assert created == [
        partition_name(date(2031, 11, 1)),
        partition_name(date(2031, 12, 1)),
        "logs_activityevent_p203201",
    ]
    assert partitions_ensure(now=later, months_ahead=2, months_back=0) == []  # idempotent
    assert {date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1)} <= set(months_held())


def test_by_default_the_months_back_to_the_retention_cut_off_are_partitioned_too_on_postgresql():
    require_postgresql()
    RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": 90})
    now = at(2033, 6, 10)
    # An agent offline since March sends its events late: they belong in March, not in DEFAULT.
    late = ActivityEventFactory(occurred_at=at(2033, 3, 20))
    assert partition_holding(late) == DEFAULT_PARTITION

    created = partitions_ensure(now=now, months_ahead=1)

    assert created == [partition_name(date(2033, month, 1)) for month in (2, 3, 4, 5, 6, 7)]  # 90 days: 4 back
    assert partition_holding(late) == "logs_activityevent_p203303"
    RetentionSettings.objects.filter(pk=1).update(activity_events_days=None)
    assert partitions_ensure(now=now, months_ahead=1)[0] == "logs_activityevent_p203206"  # for ever: 12 back


def test_the_task_and_the_command_ensure_partitions_on_postgresql(settings):
    require_postgresql()
    settings.SAFEGUARD_EVENT_PARTITIONS_AHEAD = 8
    wanted = {add_months(month_of(timezone.now()), offset) for offset in range(9)}

    created = tasks.event_partitions_ensure.delay().get()

    assert created and set(months_held()) >= wanted
    call_command("ensure_event_partitions", months=9)
    assert add_months(month_of(timezone.now()), 9) in months_held()


def test_migrate_creates_missing_partitions_on_postgresql():
    require_postgresql()
    coming = add_months(month_of(timezone.now()), 2)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partition_name(coming)}")  # as if beat had not run for months
    assert coming not in months_held()

    call_command("migrate", verbosity=0)

    assert coming in months_held()


def test_inserts_in_any_month_land_and_a_new_month_takes_its_rows_from_the_default_on_postgresql():
    require_postgresql()
    now = timezone.now()
    this_month = ActivityEventFactory(occurred_at=now)
    next_month = ActivityEventFactory(
        occurred_at=datetime.combine(add_months(month_of(now), 1), datetime.min.time(), UTC)
    )
    long_ago = ActivityEventFactory(occurred_at=at(2019, 5, 4))
    far_ahead = ActivityEventFactory(occurred_at=at(2040, 2, 29))

    assert partition_holding(this_month) == partition_name(month_of(now))
    assert partition_holding(next_month) == partition_name(add_months(month_of(now), 1))
    assert partition_holding(long_ago) == DEFAULT_PARTITION
    assert partition_holding(far_ahead) == DEFAULT_PARTITION

    assert partitions_ensure(now=at(2019, 5, 1), months_ahead=0, months_back=0) == ["logs_activityevent_p201905"]

    assert partition_holding(long_ago) == "logs_activityevent_p201905"
    assert partition_holding(far_ahead) == DEFAULT_PARTITION
    assert ActivityEvent.objects.count() == 4
    assert ActivityEvent.objects.get(uuid=long_ago.uuid).occurred_at == at(2019, 5, 4)


def test_ids_stay_unique_and_a_resent_event_is_refused_on_postgresql():
    require_postgresql()
    first = ActivityEventFactory(occurred_at=at(2030, 1, 1))
    second = ActivityEventFactory(occurred_at=at(2030, 1, 1))
    assert second.pk > first.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        ActivityEventFactory(uuid=first.uuid, occurred_at=first.occurred_at, device=first.device)


def old_months_with_events() -> dict[str, ActivityEvent]:
    """Partitions for January to March 2025 and events around a cut-off of 10 March 2025."""
    partitions_ensure(now=at(2025, 1, 15), months_ahead=2, months_back=0)
    device, person = DeviceFactory(), PersonFactory()

    def event(moment: datetime) -> ActivityEvent:
        return ActivityEventFactory(occurred_at=moment, device=device, person=person)

    return {
        "jan_1": event(at(2025, 1, 3)),
        "jan_2": event(at(2025, 1, 30)),
        "feb": event(at(2025, 2, 28, hour=23)),
        "mar_before": event(at(2025, 3, 5)),  # in the boundary month, past the cut-off
        "mar_after": event(at(2025, 3, 15)),  # in the boundary month, within the period
        "default_old": event(at(2024, 6, 1)),  # no partition of its own: in the DEFAULT one
        "now": event(timezone.now()),
    }


def test_retention_drops_whole_old_months_and_deletes_only_the_boundary_rows_on_postgresql():
    require_postgresql()
    events = old_months_with_events()
    RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": 180})
    run_at = at(2025, 3, 10) + timedelta(days=180)

    planned = {plan.key: plan.rows for plan in retention_plan(now=run_at)}
    report = retention_apply(now=run_at)

    assert planned["activity_events"] == 5
    assert report["activity_events"] == {"rows": 5, "files": 0}
    assert not table_exists("logs_activityevent_p202501")
    assert not table_exists("logs_activityevent_p202502")
    assert table_exists("logs_activityevent_p202503")
    assert table_exists(DEFAULT_PARTITION)
    assert set(ActivityEvent.objects.values_list("uuid", flat=True)) == {
        events["mar_after"].uuid,
        events["now"].uuid,
    }
    drops = AuditEntry.objects.filter(action="retention.partition_dropped").order_by("target_id")
    assert [(entry.target_id, entry.after["rows"]) for entry in drops] == [
        ("logs_activityevent_p202501", 2),
        ("logs_activityevent_p202502", 1),
    ]
    assert drops[0].summary.startswith("Dropped the activity events of January 2025 (2 events)")
    applied = AuditEntry.objects.get(action="retention.applied")
    assert applied.after["activity_events"] == {"rows": 5, "files": 0}


def test_a_second_retention_run_drops_and_deletes_nothing_more_on_postgresql():
    require_postgresql()
    old_months_with_events()
    RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": 180})
    run_at = at(2025, 3, 10) + timedelta(days=180)
    retention_apply(now=run_at)
    held = months_held()

    assert retention_apply(now=run_at)["activity_events"] == {"rows": 0, "files": 0}
    assert months_held() == held
    assert ActivityEvent.objects.count() == 2
    assert AuditEntry.objects.filter(action="retention.partition_dropped").count() == 2


def test_an_empty_period_drops_no_partition_on_postgresql():
    require_postgresql()
    old_months_with_events()
    RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": None})

    retention_apply(now=at(2030, 1, 1))

    assert ActivityEvent.objects.count() == 7
    assert {date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)} <= set(months_held())


def test_the_log_viewer_and_events_api_read_across_partitions_on_postgresql():
    require_postgresql()
    events = old_months_with_events()
    newest_first = list(ActivityEvent.objects.order_by("-occurred_at", "-id").values_list("uuid", flat=True))
    assert newest_first == [
        events[key].uuid for key in ("now", "mar_after", "mar_before", "feb", "jan_2", "jan_1", "default_old")
    ]
    # A keyset page after February's event continues into January, then the DEFAULT partition.
    feb = events["feb"]
    page = ActivityEvent.objects.filter(occurred_at__lt=feb.occurred_at).order_by("-occurred_at", "-id")[:2]
    assert [event.uuid for event in page] == [events["jan_2"].uuid, events["jan_1"].uuid]
    assert ActivityEvent.objects.get(uuid=events["default_old"].uuid).pk == events["default_old"].pk


# --- the upgrade ----------------------------------------------------------------------------------

BEFORE = [("logs", "0003_retentionsettings")]


def _insert_plain(device_id: int, person_id: int, moments: list[datetime]) -> list[tuple[int, uuid.UUID]]:
    rows = []
    with connection.cursor() as cursor:
        for moment in moments:
            event_uuid = uuid.uuid4()
            cursor.execute(
                "INSERT INTO logs_activityevent (uuid, type, device_id, person_id, occurred_at, received_at, data) "
                "VALUES (%s, 'window', %s, %s, %s, now(), '{\"title\": \"x\"}') RETURNING id",
                [event_uuid, device_id, person_id, moment],
            )
            rows.append((cursor.fetchone()[0], event_uuid))
    return rows


def test_the_upgrade_partitions_the_table_and_keeps_every_row_on_postgresql(transactional_db):
    require_postgresql()
    device, person = DeviceFactory(), PersonFactory()
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        assert not is_partitioned()
        moments = [at(2023, 2, 10), at(2023, 2, 11), at(2025, 8, 31, hour=23), timezone.now()]
        before = _insert_plain(device.pk, person.pk, moments)

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)

        assert is_partitioned()
        after = list(ActivityEvent.objects.order_by("id").values_list("id", "uuid"))
        assert after == before
        assert {date(2023, 2, 1), date(2025, 8, 1), month_of(timezone.now())} <= set(months_held())
        newest = ActivityEventFactory(device=device, person=person)
        assert newest.pk > max(pk for pk, _ in before)
        assert partition_holding(newest) == partition_name(month_of(newest.occurred_at))
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)


def test_the_upgrade_can_be_reversed_without_losing_rows_on_postgresql(transactional_db):
    require_postgresql()
    event = ActivityEventFactory(occurred_at=at(2024, 4, 4))
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        assert not is_partitioned()
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, uuid FROM logs_activityevent")
            assert cursor.fetchall() == [(event.pk, event.uuid)]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
    assert is_partitioned()
    assert list(ActivityEvent.objects.values_list("pk", flat=True)) == [event.pk]
