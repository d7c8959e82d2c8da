"""Insight on PostgreSQL with a million captures: each chart's query p50/p95 against the 300 ms target.

    .venv/bin/python bench/insight.py                  # 1,000,000 captures, 20 runs per chart
    .venv/bin/python bench/insight.py --rows 200000 --runs 10 --keep --explain

Creates its own database (`sg_bench_insight` on the PostgreSQL at BENCH_PG, default
postgres://postgres@127.0.0.1:5432), migrates it, and fills it in the database itself
(INSERT … SELECT generate_series, seeded with setseed so runs are comparable): 1,000 pupils in
five year groups, 500 devices, 12 policies of 10 keywords, captures spread over the last 365
days, one "capture.status_changed" audit row per reviewed capture (and a second for a fifth of
them), 20,000 Confide reports. Then it times every Insight selector for the lead (every group)
and a Year 9 teacher (a fifth of the school) over the default range (the last 30 days), plus
the whole page, and the lead over a full year for scale. The database is dropped at the end
unless --keep.
"""

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import scratch_db

BENCH_DB = "sg_bench_insight"
TARGET_MS = 300.0


def _setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ["DATABASE_URL"] = scratch_db.database_url(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safeguard.settings")
    import django

    django.setup()


def _fill(rows: int) -> dict:
    """The school and its captures, generated inside PostgreSQL."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from safeguard.groups.models import GroupKind, MonitoringGroup, StaffAccess
    from safeguard.policies.models import Category

    user_model = get_user_model()
    with transaction.atomic():
        groups = [
            MonitoringGroup.objects.create(name=f"Year {year}", kind=GroupKind.USER) for year in (7, 8, 9, 10, 11)
        ]
        lead = user_model.objects.create_user("lead", password="x")  # noqa: S106
        teacher = user_model.objects.create_user("teacher9", password="x")  # noqa: S106
        for group in groups:
            StaffAccess.objects.create(
                user=lead, group=group, can_manage_captures=True, can_view_recordings=True, is_confide_viewer=True
            )
        StaffAccess.objects.create(user=teacher, group=groups[2])
        group_ids = [group.pk for group in groups]
        categories = list(Category.values)
    sql = [
        "SELECT setseed(0.42)",
        # 1,000 pupils, 200 per year group; 500 devices.
        """INSERT INTO groups_person (uuid, created_at, updated_at, username, display_name)
           SELECT gen_random_uuid(), now(), now(), 'SCHOOL\\pupil' || i, 'Pupil ' || i FROM generate_series(1, 1000) i""",
        f"""INSERT INTO groups_membership (created_at, updated_at, group_id, person_id)
            SELECT now(), now(), (ARRAY{group_ids})[1 + (p.id % 5)], p.id FROM groups_person p""",
        """INSERT INTO groups_device (uuid, created_at, updated_at, hostname, os, agent_version, thumbnail)
           SELECT gen_random_uuid(), now(), now(), 'PC' || i, 'Windows 11', '1.0', '' FROM generate_series(1, 500) i""",
        # 12 policies (one per category), 10 keywords each, severities cycling low → severe.
        f"""INSERT INTO policies_keywordpolicy (uuid, created_at, updated_at, name, category, is_illegal_content,
                language, description, enabled, applies_to_everyone)
            SELECT gen_random_uuid(), now(), now(), 'Policy ' || c, c, false, 'en', '', true, true
            FROM unnest(ARRAY{categories}::text[]) c""",
        """INSERT INTO policies_keyword (created_at, updated_at, policy_id, text, match_kind, severity, enabled,
                join_spaced_letters, requires_nearby, nearby_window, source)
           SELECT now(), now(), p.id, p.category || ' word ' || i, 'word',
                  (ARRAY['low','medium','high','severe'])[1 + (i % 4)], true, false, '[]'::jsonb, 5, 'admin'
           FROM policies_keywordpolicy p, generate_series(1, 10) i""",
        "CREATE TEMP TABLE bench_kw AS SELECT row_number() OVER (ORDER BY id) AS n, id, policy_id, text, severity "
        "FROM policies_keyword",
        "CREATE TEMP TABLE bench_people AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM groups_person",
        "CREATE TEMP TABLE bench_devices AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM groups_device",
        # The captures: times over the last year, busier in school hours; statuses mostly reviewed.
        # Inserted in time order, as agents deliver them: the table's physical order follows time.
        f"""INSERT INTO captures_capture (uuid, created_at, updated_at, person_id, device_id, policy_id, keyword_id,
                keyword_text, severity, context, application, window_title, url, occurred_at, received_at,
                screenshot, screenshot_preview, status)
            SELECT gen_random_uuid(), g.t, g.t, p.id, d.id, k.policy_id, k.id, k.text, k.severity, '', 'chrome.exe',
                   '', '', g.t, g.t, '', '',
                   CASE WHEN g.t > now() - interval '3 days' AND g.r < 0.6 THEN 'new'
                        WHEN g.r < 0.03 THEN 'new' WHEN g.r < 0.15 THEN 'under_review'
                        WHEN g.r < 0.20 THEN 'escalated' WHEN g.r < 0.55 THEN 'resolved_action'
                        ELSE 'resolved_false_positive' END
            FROM (SELECT i,
                         date_trunc('day', now()) - (floor(random() * 365) || ' days')::interval
                           + (CASE WHEN random() < 0.8 THEN 8 + floor(random() * 8) ELSE floor(random() * 24) END
                              || ' hours')::interval + (floor(random() * 3600) || ' seconds')::interval AS t,
                         random() AS r, 1 + floor(random() * 1000)::int AS pn, 1 + floor(random() * 500)::int AS dn,
                         1 + floor(random() * 120)::int AS kn
                  FROM generate_series(1, {rows}) i) g
            JOIN bench_people p ON p.n = g.pn JOIN bench_devices d ON d.n = g.dn JOIN bench_kw k ON k.n = g.kn
            ORDER BY g.t""",
        # First reviews (minutes to three days later), and a second change for a fifth of them,
        # appended in time order as the audit log is.
        """INSERT INTO logs_auditentry (created_at, actor_name, action, target_type, target_id, summary, before, after)
           SELECT c.occurred_at + (floor(1 + random() * 4320) || ' minutes')::interval, 'lead',
                  'capture.status_changed', 'capture', c.uuid::text, '', '{"status": "new"}'::jsonb,
                  jsonb_build_object('status', c.status)
           FROM captures_capture c WHERE c.status <> 'new' ORDER BY 1""",
        """INSERT INTO logs_auditentry (created_at, actor_name, action, target_type, target_id, summary, before, after)
           SELECT c.occurred_at + interval '4 days', 'lead', 'capture.status_changed', 'capture', c.uuid::text, '',
                  '{"status": "under_review"}'::jsonb, jsonb_build_object('status', c.status)
           FROM captures_capture c WHERE c.status LIKE 'resolved%' AND random() < 0.2 ORDER BY 1""",
        """INSERT INTO confide_confidereport (uuid, created_at, updated_at, message, about, is_anonymous, person_id,
                device_id, reported_at, status)
           SELECT gen_random_uuid(), now(), now(), 'A concern', 'me', i % 4 = 0,
                  CASE WHEN i % 4 = 0 THEN NULL ELSE p.id END, NULL,
                  date_trunc('hour', now() - (random() * 365 || ' days')::interval), 'new'
           FROM generate_series(1, 20000) i JOIN bench_people p ON p.n = 1 + (i % 1000)""",
        "ANALYZE",
    ]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM captures_capture")
        captures = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM logs_auditentry")
        audits = cursor.fetchone()[0]
    print(
        f"filled: {captures:,} captures, {audits:,} audit rows, 20,000 Confide reports "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return {"lead": lead.pk, "teacher": teacher.pk}


def _time(fn, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def _selectors() -> dict:
    from safeguard.console import insight

    return {
        "headline": insight.insight_headline,
        "by_category": insight.insight_by_category,
        "by_severity": insight.insight_by_severity,
        "by_group": insight.insight_by_group,
        "top_keywords": insight.insight_top_keywords,
        "top_policies": insight.insight_top_policies,
        "heatmap": insight.insight_heatmap,
        "status": insight.insight_status,
        "review_time": insight.insight_review_times,
        "rising_risk": insight.insight_rising_risk,
        "fp_keywords": insight.insight_false_positives_by_keyword,
        "fp_policies": insight.insight_false_positives_by_policy,
        "confide": insight.insight_confide_over_time,
    }


def _measure(users: dict, runs: int, explain: bool) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count
    from django.test import Client

    from safeguard.console.insight import InsightFilters, insight_captures, insight_default_range

    user_model = get_user_model()
    start, end = insight_default_range()
    month = InsightFilters(start=start, end=end)
    year = InsightFilters(start=end - timedelta(days=364), end=end)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM captures_capture WHERE occurred_at >= %s", [month.start_at])
        in_month = cursor.fetchone()[0]
    print(f"default range {start} to {end}: {in_month:,} captures (lead); a year: all of them")
    print(
        f"{'chart':<14}{'lead 30 d p50':>15}{'p95':>9}{'teacher p50':>13}{'p95':>9}{'lead 1 y p95':>14}  target {TARGET_MS:.0f} ms"
    )
    results = {}
    for name, selector in _selectors().items():
        row = []
        for who, filters, repeat in (
            ("lead", month, runs),
            ("teacher", month, runs),
            ("lead", year, max(3, runs // 4)),
        ):

            def call(selector=selector, who=who, filters=filters):
                # A fresh user each time: the access rule's per-request cache starts empty, as in a request.
                return selector(user=user_model.objects.get(pk=users[who]), filters=filters)

            call()  # warm the plan and caches once
            timings = _time(call, repeat)
            row.append((statistics.median(timings), _p95(timings)))
        results[name] = row
        met = "met" if row[0][1] < TARGET_MS and row[1][1] < TARGET_MS else "MISSED"
        print(
            f"{name:<14}{row[0][0]:>12.1f} ms{row[0][1]:>6.1f} ms{row[1][0]:>10.1f} ms{row[1][1]:>6.1f} ms"
            f"{row[2][1]:>11.1f} ms  {met}"
        )
    client = Client()
    client.force_login(user_model.objects.get(pk=users["lead"]))
    logging.getLogger("axes").setLevel(logging.WARNING)
    assert client.get("/console/insight/").status_code == 200
    page = _time(lambda: client.get("/console/insight/"), max(5, runs // 2))
    print(f"{'whole page':<14}{statistics.median(page):>12.1f} ms{_p95(page):>6.1f} ms   (lead, every chart rendered)")
    if explain:
        lead = user_model.objects.get(pk=users["lead"])
        query = insight_captures(user=lead, filters=month).values("policy__category").annotate(n=Count("id"))
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print("\n".join(line for (line,) in cursor.fetchall()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure an existing benchmark database (from --keep)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of a typical chart query")
    args = parser.parse_args(argv if argv is not None else [])
    if not args.reuse:
        scratch_db.recreate_database(BENCH_DB)
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    try:
        if args.reuse:
            user_model = get_user_model()
            users = {
                "lead": user_model.objects.get(username="lead").pk,
                "teacher": user_model.objects.get(username="teacher9").pk,
            }
        else:
            started = time.perf_counter()
            call_command("migrate", verbosity=0)
            print(f"migrated in {time.perf_counter() - started:.1f} s")
            users = _fill(args.rows)
        _measure(users, args.runs, args.explain)
    finally:
        connections.close_all()
        if not args.keep:
            scratch_db.drop_database(BENCH_DB)


if __name__ == "__main__":
    main(sys.argv[1:])
