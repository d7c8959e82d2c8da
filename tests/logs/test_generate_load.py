"""`manage.py generate_load`: a generated school trust with the shape the benchmarks rely on.

Small sizes here; the same code fills 10 million events with COPY on PostgreSQL (bench/, and
docs/PERFORMANCE.md). On SQLite the rows go in with executemany, so these tests run on both.
"""

from collections import Counter
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.core import access
from safeguard.groups.models import Device, Membership, MonitoringGroup, Person
from safeguard.logs import loadgen
from safeguard.logs.loadgen import LoadSpec, load_generate
from safeguard.logs.models import ActivityEvent, EventType

pytestmark = pytest.mark.django_db(transaction=False)

END = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # a Friday evening
SPEC = LoadSpec(events=6000, captures=600, people=300, devices=240, schools=4, days=28, seed=3, end=END)


@pytest.fixture
def trust():
    return load_generate(spec=SPEC)


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE))


def test_it_writes_the_sizes_asked_for(trust):
    assert (trust.events, trust.captures, trust.people, trust.devices) == (6000, 600, 300, 240)
    assert ActivityEvent.objects.count() == 6000
    assert Capture.objects.count() == 600
    assert Person.objects.filter(username__startswith="TRUST\\").count() == 300
    assert Device.objects.count() == 240
    # Per school: a user group with Year 7 to 11 under it, and a device group of its computers.
    assert MonitoringGroup.objects.filter(parent__isnull=True, kind="user").count() == 4
    assert MonitoringGroup.objects.filter(parent__isnull=False).count() == 4 * 5
    assert MonitoringGroup.objects.filter(kind="device").count() == 4
    assert Membership.objects.filter(person__isnull=False).count() == 300
    assert Membership.objects.filter(device__isnull=False).count() == 240


def test_rows_fall_in_the_period_in_school_hours(trust):
    times = list(ActivityEvent.objects.values_list("occurred_at", flat=True))
    assert min(times) >= trust.start
    assert max(times) < END
    local = [_local(moment) for moment in times]
    weekday = [moment for moment in local if moment.weekday() < 5]
    in_lessons = [moment for moment in weekday if time(8, 45) <= moment.time() < time(15, 30)]
    at_night = [moment for moment in local if moment.time() < time(6, 0)]
    # Lessons are 6.75 of 24 hours but carry most of a school day's activity; nights almost none.
    assert len(in_lessons) / len(weekday) > 0.6
    assert len(at_night) / len(local) < 0.02
    # Weekends (8 of the 28 days) are quiet.
    assert len(weekday) / len(local) > 0.9


def test_a_few_people_are_heavy_users(trust):
    per_person = sorted(Counter(ActivityEvent.objects.values_list("person_id", flat=True)).values(), reverse=True)
    top_tenth = sum(per_person[: len(per_person) // 10])
    assert top_tenth / 6000 > 0.25  # a tenth of the pupils make over a quarter of the events
    captures = sorted(Counter(Capture.objects.values_list("person_id", flat=True)).values(), reverse=True)
    assert sum(captures[:30]) / 600 > 0.35  # captures are sharper still


def test_events_are_of_every_type_and_valid_for_it(trust):
    types = Counter(ActivityEvent.objects.values_list("type", flat=True))
    assert set(types) == set(EventType.values)
    assert types[EventType.WINDOW] > types[EventType.WEBSITE] > types[EventType.APPLICATION] > types[EventType.PRINT]
    website = ActivityEvent.objects.filter(type=EventType.WEBSITE).first()
    assert website.data["url"].startswith("https://")
    window = ActivityEvent.objects.filter(type=EventType.WINDOW).first()
    assert set(window.data) == {"title", "application", "duration_seconds"}


def test_people_use_computers_of_their_own_school(trust):
    school_of_person = {
        person_id: group_parent
        for person_id, group_parent in Membership.objects.filter(person__isnull=False).values_list(
            "person_id", "group__parent__name"
        )
    }
    school_of_device = {
        device_id: name.removesuffix(" computers")
        for device_id, name in Membership.objects.filter(device__isnull=False).values_list("device_id", "group__name")
    }
    pairs = ActivityEvent.objects.values_list("person_id", "device_id")
    assert all(school_of_person[person] == school_of_device[device] for person, device in pairs)


def test_captures_have_policies_and_recent_ones_are_mostly_new(trust):
    assert not Capture.objects.filter(policy__isnull=True).exists()
    assert not Capture.objects.filter(keyword__isnull=True).exists()
    statuses = Counter(Capture.objects.values_list("status", flat=True))
    assert statuses[CaptureStatus.RESOLVED_FALSE_POSITIVE] > statuses[CaptureStatus.NEW]
    recent = Capture.objects.filter(occurred_at__gte=datetime(2026, 11, 25, tzinfo=UTC))
    assert recent.filter(status=CaptureStatus.NEW).count() > recent.count() / 2


def test_staff_see_what_their_groups_allow(trust):
    user_model = get_user_model()
    lead = user_model.objects.get(username="trust.lead")
    year9 = user_model.objects.get(username="s01.year9")
    assert not lead.has_usable_password()
    assert access.visible_people(lead).count() == 300
    # School 01's Year 9: every fifth of school 01's pupils (a quarter of the trust).
    assert access.visible_people(year9).count() == 300 // 4 // 5
    assert access.scope_by_person_or_device(ActivityEvent.objects.all(), year9).count() < 6000 / 10


def test_the_console_reads_it(trust, client):
    client.force_login(get_user_model().objects.get(username="trust.lead"))
    response = client.get("/console/logs/", {"tab": "timeline"})
    assert response.status_code == 200
    assert b"TRUST" in response.content


def test_the_same_seed_gives_the_same_rows():
    import random

    trust = loadgen._Trust(
        person_ids=[10, 11, 12, 13],
        device_ids=[20, 21],
        home_device=[0, 1, 0, 1],
        school_devices=[[0], [1]],
        person_school=[0, 1, 0, 1],
        keywords=[(1, 1, "word", "low")],
        groups=0,
    )
    spec = LoadSpec(events=300, people=4, devices=2, schools=2, days=3, end=END)
    calendar = loadgen._Calendar.build(end=END, days=3)

    def rows(seed: int) -> list[tuple]:
        # psycopg's Jsonb wrapper (on PostgreSQL) has no equality: compare the JSON it holds.
        return [
            tuple(getattr(value, "obj", value) for value in row)
            for row in loadgen._event_rows(random.Random(seed), spec, trust, calendar)
        ]

    assert rows(5) == rows(5)
    assert rows(5) != rows(6)
    assert len(rows(5)) == 300


def test_a_second_load_is_refused(trust):
    with pytest.raises(CommandError, match="already holds a generated trust"):
        call_command(
            "generate_load", "--events", "10", "--captures", "1", "--people", "5", "--devices", "5", "--schools", "1"
        )


def test_the_command_prints_what_it_did():
    from io import StringIO

    out = StringIO()
    call_command(
        "generate_load",
        "--events",
        "500",
        "--captures",
        "50",
        "--people",
        "40",
        "--devices",
        "30",
        "--schools",
        "2",
        "--days",
        "7",
        stdout=out,
    )
    assert "Generated 500 events and 50 captures for 40 people" in out.getvalue()
    assert ActivityEvent.objects.count() == 500


def test_a_bad_size_is_a_clear_error():
    with pytest.raises(CommandError, match="every school needs at least one pupil"):
        call_command("generate_load", "--people", "3", "--schools", "5")


def test_big_loads_rebuild_the_indexes_they_defer(monkeypatch):
    """Above the threshold, PostgreSQL loads without the plain indexes and builds them after: all come back."""

    def index_names() -> set[str]:
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, ActivityEvent._meta.db_table)
        return {name for name, info in constraints.items() if info["index"]}

    before = index_names()
    monkeypatch.setattr(loadgen, "DEFER_INDEXES_FROM", 100)
    load_generate(spec=LoadSpec(events=400, captures=20, people=20, devices=20, schools=2, days=5, end=END))
    assert ActivityEvent.objects.count() == 400
    assert index_names() == before
    assert {"event_person_time", "event_device_time", "event_type_time", "event_time_keyset"} <= before
