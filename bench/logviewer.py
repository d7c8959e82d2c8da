"""The log viewer at trust scale: every console filter's first and next page, p50/p95 against 150 ms.

    .venv/bin/python bench/logviewer.py                        # generate 1,000,000 events, measure, drop
    .venv/bin/python bench/logviewer.py --events 10000000      # the issue's full 10 million
    .venv/bin/python bench/logviewer.py --reuse --keep         # measure a database kept from a run before

Creates `sg_bench_trust` on the PostgreSQL at BENCH_PG (default postgres://postgres@127.0.0.1:5432),
migrates it and fills it with `manage.py generate_load` (20 schools, 20,000 pupils and computers,
200,000 captures over 90 days; --events sets the events, default 1,000,000 to keep `make bench` to a
few minutes on two shared cores). Then, for the trust's safeguarding lead (every school) and for a
Year 9 teacher (one year group of one school), it requests /console/logs/ through Django's test
client (the whole view: access rule, filter form, selectors, template) for each filter the console
offers, first page and the next page (the page's own "next" link), and reports p50/p95 of the
whole page, the query count of each page, and whether it stays the same from the first page to
the next. EXPLAIN (ANALYZE, BUFFERS) of every row query goes to docs/perf/logviewer-plans.md
(--plans PATH to write elsewhere).
"""

import argparse
import logging
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import scratch_db

BENCH_DB = "sg_bench_trust"
ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = scratch_db.database_url(BENCH_DB)
    os.environ.pop("REDIS_URL", None)  # the console's reads need no broker; keep the run self-contained
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safeguard.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def _scenarios() -> list[tuple[str, str, dict]]:
    """(name, who, query) for each filter of the console, on the generated trust."""
    from django.db.models import Count
    from django.utils import timezone

    from safeguard.captures.models import Capture
    from safeguard.groups.models import Device, MonitoringGroup, Person
    from safeguard.logs.models import ActivityEvent

    today = timezone.localdate()
    week = {"from": str(today - timedelta(days=7)), "to": str(today)}
    # The heaviest pupil (the worst case for "person"), their usual computer, a school, a policy.
    heavy = ActivityEvent.objects.values("person_id").annotate(n=Count("id")).order_by("-n").first()["person_id"]
    person = Person.objects.get(pk=heavy)
    device = Device.objects.get(pk=person.current_devices.values("pk")[:1])
    school = MonitoringGroup.objects.get(name="School 01")
    computers = MonitoringGroup.objects.get(name="School 01 computers")
    policy = Capture.objects.values("policy__uuid").annotate(n=Count("id")).order_by("-n").first()["policy__uuid"]
    year9 = MonitoringGroup.objects.get(parent=school, name="Year 9")
    year9_pupil = Person.objects.filter(memberships__group=year9).order_by("pk").first()
    timeline = {"tab": "timeline"}
    captures = {"tab": "captures"}
    return [
        ("timeline, everything", "lead", {**timeline}),
        ("timeline, person + dates", "lead", {**timeline, "person": str(person.uuid), **week}),
        ("timeline, group + dates", "lead", {**timeline, "group": str(school.uuid), **week}),
        ("timeline, device group + dates", "lead", {**timeline, "group": str(computers.uuid), **week}),
        ("timeline, device", "lead", {**timeline, "device": str(device.uuid)}),
        ("timeline, event type (website)", "lead", {**timeline, "type": "website"}),
        ("timeline, event type (print)", "lead", {**timeline, "type": "print"}),
        ("timeline, captures only", "lead", {**timeline, "type": "capture"}),
        ("timeline, policy + severity + status", "lead", {**timeline, "policy": str(policy), "status": "new"}),
        ("captures, everything", "lead", {**captures}),
        ("captures, policy", "lead", {**captures, "policy": str(policy)}),
        ("captures, severity", "lead", {**captures, "severity": "severe"}),
        ("captures, status", "lead", {**captures, "status": "escalated"}),
        ("captures, person + dates", "lead", {**captures, "person": str(person.uuid), **week}),
        ("timeline, Year 9 teacher, everything", "year9", {**timeline}),
        ("timeline, Year 9 teacher, person", "year9", {**timeline, "person": str(year9_pupil.uuid)}),
        ("captures, Year 9 teacher, everything", "year9", {**captures}),
    ]


def _next_after(html: str) -> str | None:
    match = re.search(r"[?&;]after=([A-Za-z0-9_\-]+)", html)
    return match.group(1) if match else None


def _measure(runs: int, plans_path: Path | None) -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user_model = get_user_model()
    logging.getLogger("axes").setLevel(logging.WARNING)
    clients = {}
    for who, username in (("lead", "trust.lead"), ("year9", "s01.year9")):
        client = Client()
        client.force_login(user_model.objects.get(username=username))
        clients[who] = client
    results = []
    plans: list[str] = []
    print(
        f"{'filter':<40}{'page':>6}{'rows':>6}{'p50':>9}{'p95':>9}{'queries':>9}{'in SQL':>9}"
        f"  target p95 < {TARGET_MS:.0f} ms",
        flush=True,
    )
    for name, who, query in _scenarios():
        client = clients[who]
        first = client.get("/console/logs/", query)
        assert first.status_code == 200, (name, first.status_code)
        after = _next_after(first.content.decode())
        pages = [("first", query)]
        if after:
            pages.append(("next", {**query, "after": after}))
        for page, params in pages:
            client.get("/console/logs/", params)  # warm: plans and caches, as a second visitor finds them
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get("/console/logs/", params)
                timings.append((time.perf_counter() - started) * 1000)
            with CaptureQueriesContext(connection) as queries:
                response = client.get("/console/logs/", params)
            rows = len(re.findall(r'<tr class="(?:timeline|capture)-row', response.content.decode()))
            result = {
                "name": name,
                "page": page,
                "p50": statistics.median(timings),
                "p95": _p95(timings),
                "queries": len(queries.captured_queries),
                # Time in the database of that last request (Django's timing of each query).
                "sql_ms": sum(float(query["time"]) for query in queries.captured_queries) * 1000,
                "rows": rows,
            }
            results.append(result)
            print(
                f"{name:<40}{page:>6}{rows:>6}{result['p50']:>6.1f} ms{result['p95']:>6.1f} ms{result['queries']:>9}"
                f"{result['sql_ms']:>6.0f} ms"
                f"  {'met' if result['p95'] < TARGET_MS else 'MISSED'}",
                flush=True,
            )
            if plans_path is not None:
                plans.append(_explain(name, page, queries.captured_queries))
    if plans_path is not None:
        plans_path.parent.mkdir(parents=True, exist_ok=True)
        plans_path.write_text(_plans_document(plans), encoding="utf-8")
        print(f"plans written to {plans_path}", flush=True)
    return results


def _explain(name: str, page: str, captured: list[dict]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the page's queries that read events or captures."""
    from django.db import connection

    parts = [f"## {name}: {page} page\n"]
    for query in captured:
        sql = query["sql"]
        if not sql.startswith("SELECT") or not re.search(r'FROM "(logs_activityevent|captures_capture)"', sql):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            plan = "\n".join(line for (line,) in cursor.fetchall())
        short = sql if len(sql) < 1500 else sql[:1500] + " …"
        parts.append(f"```sql\n{short}\n```\n\n```\n{plan}\n```\n")
    return "\n".join(parts)


def _plans_document(plans: list[str]) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM logs_activityevent")
        events = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM captures_capture")
        captures = cursor.fetchone()[0]
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
    header = (
        "# Log viewer query plans (generated by bench/logviewer.py)\n\n"
        f"{events:,} activity events, {captures:,} captures (`manage.py generate_load`); {version}.\n"
        "Each section: the row queries of one console page, as the view ran them, with EXPLAIN (ANALYZE, BUFFERS).\n"
        "The SQL is Django's, with parameters inlined by the driver.\n\n"
    )
    return header + "\n".join(plans)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--captures", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure an existing benchmark database (from --keep)")
    parser.add_argument("--plans", default=str(ROOT / "docs" / "perf" / "logviewer-plans.md"))
    parser.add_argument("--no-plans", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    if not args.reuse:
        scratch_db.recreate_database(BENCH_DB)
    _setup_django()
    from django.core.management import call_command
    from django.db import connections

    try:
        if not args.reuse:
            started = time.perf_counter()
            call_command("migrate", verbosity=0)
            call_command("generate_load", events=args.events, captures=args.captures)
            print(f"migrated and generated in {time.perf_counter() - started:.0f} s", flush=True)
        results = _measure(args.runs, None if args.no_plans else Path(args.plans))
        missed = [r for r in results if r["p95"] >= TARGET_MS]
        growing = [
            r["name"]
            for r, nxt in zip(results, results[1:], strict=False)
            if r["page"] == "first"
            and nxt["page"] == "next"
            and nxt["name"] == r["name"]
            and nxt["queries"] != r["queries"]
        ]
        print(
            f"{len(results) - len(missed)} of {len(results)} pages met p95 < {TARGET_MS:.0f} ms; "
            f"query count first page = next page for every filter: {'yes' if not growing else 'NO: ' + ', '.join(growing)}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    finally:
        connections.close_all()
        if not args.keep:
            scratch_db.drop_database(BENCH_DB)


if __name__ == "__main__":
    main(sys.argv[1:])
