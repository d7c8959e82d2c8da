"""Retention of activity events on PostgreSQL: dropping a month's partition against deleting its rows.

    .venv/bin/python bench/partitions.py                   # 150,000 events a month
    .venv/bin/python bench/partitions.py --events 1000000

Creates `sg_bench_partitions` on the PostgreSQL at BENCH_PG (default postgres://postgres@127.0.0.1:5432),
migrates it (the events table is partitioned by month), and puts --events events into one old
month that has its own partition, and as many into an old month that has none (they sit in the
DEFAULT partition, as every row did before partitioning, and as on SQLite). One retention run
(`retention_apply`, the nightly task) then removes both: the first month by DETACH + DROP, the
second row by row in batches of 5,000. Each path is timed on its own run. The database is dropped
at the end.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import scratch_db

BENCH_DB = "sg_bench_partitions"
ROOT = Path(__file__).resolve().parent.parent


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = scratch_db.database_url(BENCH_DB)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safeguard.settings")
    import django

    django.setup()


def _fill(month: datetime, count: int, device_id: int, person_id: int) -> float:
    """`count` events spread over `month`, inserted in one statement; seconds taken."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO logs_activityevent (uuid, type, device_id, person_id, occurred_at, received_at, data) "
            "SELECT gen_random_uuid(), 'window', %s, %s, %s + (n %% 1166400) * interval '2 seconds', "
            "now(), jsonb_build_object('title', 'Document ' || n, 'application', 'winword.exe') "
            "FROM generate_series(1, %s) AS n",
            [device_id, person_id, month, count],
        )
    return time.perf_counter() - started


def _table_size(name: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size(to_regclass(%s)))", [name])
        return cursor.fetchone()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000, help="events per month (default 150,000)")
    args = parser.parse_args(argv)

    scratch_db.recreate_database(BENCH_DB)
    try:
        _setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from safeguard.logs.models import ActivityEvent, AuditEntry, RetentionSettings
        from safeguard.logs.partitions import partitions_ensure
        from safeguard.logs.retention import retention_apply
        from tests.factories import DeviceFactory, PersonFactory

        device, person = DeviceFactory(), PersonFactory()
        now = datetime.now(UTC)
        partitioned_month = datetime(now.year - 2, 3, 1, tzinfo=UTC)
        default_month = datetime(now.year - 2, 1, 1, tzinfo=UTC)
        partitions_ensure(now=partitioned_month, months_back=0, months_ahead=0)
        RetentionSettings.objects.update_or_create(pk=1, defaults={"activity_events_days": 180})

        fill_seconds = _fill(partitioned_month, args.events, device.pk, person.pk)
        size = _table_size(f"logs_activityevent_p{partitioned_month:%Y%m}")
        started = time.perf_counter()
        dropped = retention_apply(now=partitioned_month + timedelta(days=40 + 180))["activity_events"]["rows"]
        drop_seconds = time.perf_counter() - started
        assert AuditEntry.objects.filter(action="retention.partition_dropped").count() == 1

        _fill(default_month, args.events, device.pk, person.pk)
        started = time.perf_counter()
        deleted = 0
        while True:  # a run stops after 200 batches; later nights carry on: count them all here
            removed = retention_apply(now=default_month + timedelta(days=40 + 180))["activity_events"]["rows"]
            deleted += removed
            if not removed:
                break
        delete_seconds = time.perf_counter() - started
        assert not ActivityEvent.objects.exists()

        print(
            f"events per month: {args.events:,} (insert {args.events / fill_seconds:,.0f} rows/s); month's partition {size}"
        )
        print(f"retention, month with its own partition (DETACH + DROP): {dropped:,} rows in {drop_seconds:.2f} s")
        print(
            f"retention, same rows deleted in batches of 5,000 (DEFAULT partition, as before partitioning "
            f"and on SQLite): {deleted:,} rows in {delete_seconds:.1f} s ({deleted / delete_seconds:,.0f} rows/s)"
        )
    finally:
        from django.db import connections

        connections.close_all()
        scratch_db.drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
