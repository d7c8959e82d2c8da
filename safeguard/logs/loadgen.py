"""A realistic school trust of generated data, for benchmarks and sizing (`manage.py generate_load`).

What it makes (defaults: the trust of issue 8):
- `schools` schools, each a user group with five year-group subgroups (Year 7 to 11) and a device
  group of its computers; `people` pupils spread over the schools and years, `devices` computers,
  each pupil with a usual computer in their school (85% of their events) and others in the same
  school for the rest.
- Staff: `trust.lead` (every school, every right), `s01.head` (school 1) and `s01.year9` (school 1's
  Year 9 only); their passwords are unusable (set one with `changepassword` to look around).
- `events` activity events and `captures` captures over the last `days` days. Time follows the
  school day: lessons (08:45 to 15:30 on weekdays) carry most of it, with dips at break and lunch,
  some homework in the evening, little at night and at weekends. People are skewed: weights are
  log-normal and 1% of pupils are heavy users with eight times more; captures follow a sharper skew
  (a few pupils cause many). Rows are written day by day in time order, as agents deliver them, so
  the table's physical order follows time as it does in production.

How: on PostgreSQL every table of generated rows is filled with COPY (psycopg's `cursor.copy`,
rows formatted by psycopg's C code); the much smaller trust skeleton (people, devices, groups)
goes through bulk_create. SQLite has no COPY: there the same rows are inserted with executemany,
which is slow but correct, so small loads work in the embedded mode and in tests on either database.

Deterministic: the same `seed` and `end` give the same rows (the UUIDs included).
"""

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.groups.models import Device, GroupKind, Membership, MonitoringGroup, Person, StaffAccess
from safeguard.logs.models import ActivityEvent, EventType
from safeguard.policies.models import Category, Keyword, KeywordPolicy, Severity

# Every generated username starts with this, so a second load into the same database is refused
# (people are unique by username) with a clear message rather than an integrity error halfway.
USERNAME_PREFIX = "TRUST\\"
STAFF_USERNAMES = ("trust.lead", "s01.head", "s01.year9")
YEARS = (7, 8, 9, 10, 11)

# Share of each event type (windows and websites dominate what agents report).
EVENT_TYPE_WEIGHTS = {
    EventType.WINDOW: 48,
    EventType.WEBSITE: 36,
    EventType.APPLICATION: 10,
    EventType.PRINT: 1.5,
    EventType.FILE_DELETED: 2.5,
    EventType.LOGON: 1,
    EventType.LOGOFF: 1,
}
STATUS_OLD = [  # captures older than three days: mostly reviewed
    (CaptureStatus.NEW, 3),
    (CaptureStatus.UNDER_REVIEW, 10),
    (CaptureStatus.ESCALATED, 5),
    (CaptureStatus.RESOLVED_ACTION, 32),
    (CaptureStatus.RESOLVED_FALSE_POSITIVE, 50),
]
# Below this many rows, keeping indexes up to date during the load is cheaper than rebuilding them.
DEFER_INDEXES_FROM = 500_000
SEVERITY_CYCLE = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.SEVERE]


@dataclass(frozen=True)
class LoadSpec:
    """The size and shape of a generated trust."""

    events: int = 10_000_000
    captures: int = 200_000
    people: int = 20_000
    devices: int = 20_000
    schools: int = 20
    days: int = 90
    seed: int = 8
    # The end of the generated period (exclusive); default: the start of the current hour.
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("events", "captures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("people", "devices", "schools", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.schools > min(self.people, self.devices):
            raise ValueError("every school needs at least one pupil and one computer")


@dataclass
class LoadResult:
    """What was written, and how long each stage took (seconds)."""

    people: int = 0
    devices: int = 0
    groups: int = 0
    events: int = 0
    captures: int = 0
    start: datetime | None = None
    end: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class LoadExistsError(Exception):
    """The database already holds a generated trust."""


# --- Where time goes: the school day ---------------------------------------------------------------


def _minute_weights(*, weekday: bool) -> list[float]:
    """Relative activity in each minute of a local day."""
    weights = []
    for minute in range(24 * 60):
        hour = minute / 60
        if weekday:
            if 8.75 <= hour < 15.5:
                # Lessons, with break (10:45-11:05) and lunch (12:30-13:15) quieter.
                weight = 4.0 if 10.75 <= hour < 11.0833 else 5.0 if 12.5 <= hour < 13.25 else 10.0
            elif 7.5 <= hour < 8.75:
                weight = 1.0
            elif 15.5 <= hour < 18:
                weight = 2.0
            elif 18 <= hour < 22:
                weight = 1.5
            else:
                weight = 0.05
        else:
            weight = 1.0 if 9 <= hour < 22 else 0.05
        weights.append(weight)
    return weights


def _day_weight(day: date) -> float:
    return 1.0 if day.weekday() < 5 else 0.08


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """`total` shared out in proportion to `weights`, exactly (largest remainders)."""
    whole = sum(weights)
    exact = [total * weight / whole for weight in weights]
    counts = [int(value) for value in exact]
    short = total - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[:short]:
        counts[i] += 1
    return counts


@dataclass(frozen=True)
class _Calendar:
    """The days of the period with their local midnights (as Unix times) and minute weights."""

    midnights: list[float]
    day_weights: list[float]
    weekday_cum: list[float]
    weekend_cum: list[float]
    weekdays: list[bool]

    @classmethod
    def build(cls, *, end: datetime, days: int) -> "_Calendar":
        zone = ZoneInfo(settings.TIME_ZONE)
        last = end.astimezone(zone).date()
        dates = [last - timedelta(days=offset) for offset in range(days, 0, -1)]
        return cls(
            midnights=[datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() for d in dates],
            day_weights=[_day_weight(d) for d in dates],
            weekday_cum=list(accumulate(_minute_weights(weekday=True))),
            weekend_cum=list(accumulate(_minute_weights(weekday=False))),
            weekdays=[d.weekday() < 5 for d in dates],
        )

    def times(self, rng: random.Random, total: int) -> Iterator[list[datetime]]:
        """`total` instants over the period, one sorted list per day."""
        minutes = range(24 * 60)
        for midnight, count, weekday in zip(
            self.midnights, _split(total, self.day_weights), self.weekdays, strict=True
        ):
            if not count:
                continue
            cum = self.weekday_cum if weekday else self.weekend_cum
            picked = rng.choices(minutes, cum_weights=cum, k=count)
            stamps = sorted(midnight + minute * 60 + rng.random() * 60 for minute in picked)
            yield [datetime.fromtimestamp(stamp, UTC) for stamp in stamps]


# --- What the rows say ---------------------------------------------------------------------------

_SITES = [
    "www.bbc.co.uk/bitesize",
    "classroom.google.com",
    "www.youtube.com/watch",
    "en.wikipedia.org/wiki",
    "www.mathsisfun.com",
    "kahoot.it",
    "quizlet.com",
    "www.senecalearning.com",
    "www.office.com",
    "scratch.mit.edu/projects",
    "www.duolingo.com",
    "www.nationalgeographic.com",
    "www.coolmathgames.com",
    "www.reddit.com/r",
    "www.tiktok.com/@",
    "www.roblox.com/games",
]
_TOPICS = [
    "photosynthesis",
    "fractions",
    "world-war-two",
    "volcanoes",
    "shakespeare",
    "algebra",
    "the-water-cycle",
    "romeo-and-juliet",
    "electricity",
    "french-verbs",
    "climate-change",
    "the-tudors",
    "pythagoras",
    "cells",
    "poetry",
    "football",
    "minecraft",
    "music",
]
_APPS = [
    ("chrome.exe", "Google Chrome"),
    ("msedge.exe", "Microsoft Edge"),
    ("WINWORD.EXE", "Word"),
    ("POWERPNT.EXE", "PowerPoint"),
    ("EXCEL.EXE", "Excel"),
    ("Teams.exe", "Microsoft Teams"),
    ("notepad.exe", "Notepad"),
    ("explorer.exe", "File Explorer"),
    ("scratch.exe", "Scratch 3"),
]


def _data_pool(rng: random.Random) -> dict[str, list[str]]:
    """Ready JSON texts of each event type's `data`, picked from per row (json.dumps per row would dominate)."""
    pool: dict[str, list[str]] = {kind: [] for kind in EventType.values}
    for _ in range(400):
        site, topic = rng.choice(_SITES), rng.choice(_TOPICS)
        exe, app = rng.choice(_APPS)
        title = f"{topic.replace('-', ' ').title()} - {app}"
        pool[EventType.WINDOW].append(
            json.dumps({"title": title, "application": exe, "duration_seconds": rng.randint(5, 1800)})
        )
        pool[EventType.WEBSITE].append(
            json.dumps(
                {
                    "url": f"https://{site}/{topic}",
                    "title": topic.replace("-", " ").title(),
                    "browser": rng.choice(("chrome.exe", "msedge.exe")),
                }
            )
        )
        pool[EventType.APPLICATION].append(
            json.dumps(
                {"name": exe, "path": f"C:\\Program Files\\{app}\\{exe}", "action": rng.choice(("started", "stopped"))}
            )
        )
        pool[EventType.PRINT].append(
            json.dumps(
                {"document": f"{topic}.docx", "printer": f"Library-{rng.randint(1, 4)}", "pages": rng.randint(1, 12)}
            )
        )
        pool[EventType.FILE_DELETED].append(json.dumps({"path": f"C:\\Users\\pupil\\Documents\\{topic}.docx"}))
    pool[EventType.LOGON] = [json.dumps({"session": "console"}), "{}"]
    pool[EventType.LOGOFF] = [json.dumps({"session": "console"}), "{}"]
    return {kind: [_json_value(text) for text in texts] for kind, texts in pool.items()}


def _json_value(text: str) -> Any:
    """A JSON text as the writer takes it: for COPY, wrapped so psycopg sends it as jsonb as it is
    (not encoded again as a JSON string); for executemany, the object (the field encodes it)."""
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return Jsonb(text, dumps=str)
    return json.loads(text)


# --- Writing rows ------------------------------------------------------------------------------


def _columns(model, names: Sequence[str]) -> list[Field]:
    return [model._meta.get_field(name) for name in names]


def _write(model, names: Sequence[str], rows: Iterable[tuple]) -> int:
    """Append `rows` (values in `names` order) to `model`'s table: COPY on PostgreSQL, executemany elsewhere."""
    fields = _columns(model, names)
    table = model._meta.db_table
    quoted = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    count = 0
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            # Binary COPY: psycopg's C dumpers write UUIDs and timestamps without text formatting
            # (about a quarter less CPU than text COPY on this machine). Binary needs each column's type.
            cursor.execute(
                "SELECT attname, atttypid::regtype::text FROM pg_attribute WHERE attrelid = %s::regclass",
                [table],
            )
            types = dict(cursor.fetchall())
            with cursor.copy(f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([types[f.column] for f in fields])
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count
    # No COPY: prepare each value as Django would (UUIDs as hex text, datetimes as SQLite text).
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(table)} ({quoted}) VALUES ({placeholders})"  # noqa: S608 (names come from the models)
    batch: list[list] = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append([f.get_db_prep_save(value, connection) for f, value in zip(fields, row, strict=True)])
            if len(batch) >= 5000:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


@contextmanager
def _indexes_deferred(model, rows: int) -> Iterator[None]:
    """On PostgreSQL, for a big load: drop the table's plain indexes, and build them again after.

    Keeping a B-tree up to date row by row cost four times the COPY itself here (six indexes on
    the events table); building it once by sorting is far cheaper. Indexes behind constraints
    (the primary key, the unique UUID) stay, so the load is still checked row by row. Runs inside
    the caller's transaction: on failure the drops roll back with the rows. While it runs, the
    table is locked (DROP INDEX), which is why this is a generator for benchmark databases only.
    """
    if connection.vendor != "postgresql" or rows < DEFER_INDEXES_FROM:
        yield
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i
               WHERE i.indrelid = %s::regclass
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:
            # As pg_restore --disable-triggers does: skip the foreign-key checks of the copied rows
            # (they cost half as much again as the COPY). Every id in them was read from the rows
            # just created. Only a superuser may; others get the checks.
            cursor.execute("SET LOCAL session_replication_role = replica")
    yield
    with connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: their checks of the copied rows
        # are still queued, and PostgreSQL builds no index on a table with queued trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            # A partitioned table's index reads "ON ONLY parent"; rebuilt on the parent it covers every partition.
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# --- The trust -----------------------------------------------------------------------------------


@dataclass
class _Trust:
    person_ids: list[int]
    device_ids: list[int]
    # For person i: their usual computer (an index into device_ids) and the computers of their school.
    home_device: list[int]
    school_devices: list[list[int]]
    person_school: list[int]
    keywords: list[tuple[int, int, str, str]]  # (keyword id, policy id, text, severity)
    groups: int


def _build_trust(spec: LoadSpec, now: datetime) -> _Trust:
    """People, computers, groups, staff and policies, through the ORM (tens of thousands of rows)."""
    if Person.objects.filter(username__startswith=USERNAME_PREFIX).exists():
        raise LoadExistsError(
            "This database already holds a generated trust (people named TRUST\\...): load into a fresh database."
        )
    user_model = get_user_model()
    if user_model.objects.filter(username__in=STAFF_USERNAMES).exists():
        raise LoadExistsError(f"Staff accounts {', '.join(STAFF_USERNAMES)} already exist: use a fresh database.")

    schools = []
    years: list[list[MonitoringGroup]] = []
    computers = []
    for s in range(1, spec.schools + 1):
        school = MonitoringGroup.objects.create(name=f"School {s:02d}", kind=GroupKind.USER)
        schools.append(school)
        years.append(
            MonitoringGroup.objects.bulk_create(
                [MonitoringGroup(name=f"Year {y}", kind=GroupKind.USER, parent=school) for y in YEARS]
            )
        )
        computers.append(MonitoringGroup.objects.create(name=f"School {s:02d} computers", kind=GroupKind.DEVICE))

    people = Person.objects.bulk_create(
        [
            Person(
                username=f"{USERNAME_PREFIX}s{i % spec.schools + 1:02d}p{i:05d}",
                display_name=f"Pupil {i:05d}",
                first_seen_at=now - timedelta(days=spec.days),
            )
            for i in range(spec.people)
        ],
        batch_size=2000,
    )
    devices = Device.objects.bulk_create(
        [
            Device(
                hostname=f"S{i % spec.schools + 1:02d}-PC{i:05d}",
                os="Windows 11",
                agent_version="1.0.0",
                enrolled_at=now - timedelta(days=spec.days),
                last_seen_at=now,
                current_person=people[i] if i < spec.people else None,
            )
            for i in range(spec.devices)
        ],
        batch_size=2000,
    )
    Membership.objects.bulk_create(
        [
            Membership(group=years[i % spec.schools][(i // spec.schools) % len(YEARS)], person=person)
            for i, person in enumerate(people)
        ]
        + [Membership(group=computers[i % spec.schools], device=device) for i, device in enumerate(devices)],
        batch_size=5000,
    )

    lead = user_model.objects.create_user("trust.lead", first_name="Trust", last_name="Lead")
    head = user_model.objects.create_user("s01.head", first_name="School 1", last_name="Head")
    year9 = user_model.objects.create_user("s01.year9", first_name="Year 9", last_name="Teacher")
    for user in (lead, head, year9):
        user.set_unusable_password()
        user.save(update_fields=["password"])
    all_rights = {"can_manage_captures": True, "can_view_recordings": True, "is_confide_viewer": True}
    StaffAccess.objects.bulk_create(
        [StaffAccess(user=lead, group=group, **all_rights) for group in schools + computers]
        + [
            StaffAccess(user=head, group=schools[0], **all_rights),
            StaffAccess(user=head, group=computers[0], **all_rights),
            StaffAccess(user=year9, group=years[0][YEARS.index(9)], can_manage_captures=True),
        ]
    )

    keywords = []
    for n, category in enumerate(Category.values):
        policy, _ = KeywordPolicy.objects.get_or_create(
            name=f"Trust load: {Category(category).label}", defaults={"category": category}
        )
        for k in range(10):
            keyword, _ = Keyword.objects.get_or_create(
                policy=policy,
                text=f"{category.replace('_', ' ')} word {k}",
                defaults={"severity": SEVERITY_CYCLE[(n + k) % len(SEVERITY_CYCLE)]},
            )
            keywords.append((keyword.pk, policy.pk, keyword.text, keyword.severity))

    school_devices: list[list[int]] = [[] for _ in range(spec.schools)]
    for i in range(spec.devices):
        school_devices[i % spec.schools].append(i)
    home = []
    for i in range(spec.people):
        own = school_devices[i % spec.schools]
        home.append(own[(i // spec.schools) % len(own)])
    return _Trust(
        person_ids=[p.pk for p in people],
        device_ids=[d.pk for d in devices],
        home_device=home,
        school_devices=school_devices,
        person_school=[i % spec.schools for i in range(spec.people)],
        keywords=keywords,
        groups=len(schools) * (1 + len(YEARS)) + len(computers),
    )


def _person_weights(rng: random.Random, count: int, sharpness: float) -> list[float]:
    """Cumulative weights of picking each person: log-normal, with 1% heavy users at eight times."""
    weights = []
    for _ in range(count):
        weight = rng.lognormvariate(0.0, sharpness)
        if rng.random() < 0.01:
            weight *= 8
        weights.append(weight)
    return list(accumulate(weights))


def _device_for(rng: random.Random, trust: _Trust, person: int) -> int:
    """A person's usual computer most of the time, another in their school otherwise."""
    if rng.random() < 0.85:
        return trust.device_ids[trust.home_device[person]]
    return trust.device_ids[rng.choice(trust.school_devices[trust.person_school[person]])]


EVENT_COLUMNS = ("uuid", "type", "device", "person", "occurred_at", "received_at", "data")


def _event_rows(rng: random.Random, spec: LoadSpec, trust: _Trust, calendar: _Calendar) -> Iterator[tuple]:
    people = range(len(trust.person_ids))
    cum = _person_weights(rng, len(trust.person_ids), 1.0)
    types = list(EVENT_TYPE_WEIGHTS)
    type_cum = list(accumulate(EVENT_TYPE_WEIGHTS.values()))
    pool = _data_pool(rng)
    delay = timedelta(seconds=4)
    person_ids = trust.person_ids
    for moments in calendar.times(rng, spec.events):
        who = rng.choices(people, cum_weights=cum, k=len(moments))
        kinds = rng.choices(types, cum_weights=type_cum, k=len(moments))
        for moment, person, kind in zip(moments, who, kinds, strict=True):
            yield (
                _uuid(rng),
                kind.value,
                _device_for(rng, trust, person),
                person_ids[person],
                moment,
                moment + delay,
                rng.choice(pool[kind]),
            )


CAPTURE_COLUMNS = (
    "uuid",
    "created_at",
    "updated_at",
    "person",
    "device",
    "policy",
    "keyword",
    "keyword_text",
    "severity",
    "context",
    "application",
    "window_title",
    "url",
    "occurred_at",
    "received_at",
    "screenshot",
    "screenshot_preview",
    "status",
)


def _capture_rows(
    rng: random.Random, spec: LoadSpec, trust: _Trust, calendar: _Calendar, end: datetime
) -> Iterator[tuple]:
    people = range(len(trust.person_ids))
    cum = _person_weights(rng, len(trust.person_ids), 1.6)  # sharper: a few pupils cause many captures
    statuses = [status for status, _ in STATUS_OLD]
    status_cum = list(accumulate(weight for _, weight in STATUS_OLD))
    recent = end - timedelta(days=3)
    for moments in calendar.times(rng, spec.captures):
        who = rng.choices(people, cum_weights=cum, k=len(moments))
        for moment, person in zip(moments, who, strict=True):
            keyword_id, policy_id, text, severity = rng.choice(trust.keywords)
            if moment >= recent and rng.random() < 0.7:
                status = CaptureStatus.NEW
            else:
                status = rng.choices(statuses, cum_weights=status_cum)[0]
            topic = rng.choice(_TOPICS)
            yield (
                _uuid(rng),
                moment,
                moment,
                trust.person_ids[person],
                _device_for(rng, trust, person),
                policy_id,
                keyword_id,
                text,
                severity,
                f"... talking about {text} in {topic} ...",
                "chrome.exe",
                f"{topic.replace('-', ' ').title()} - Google Chrome",
                f"https://{rng.choice(_SITES)}/{topic}",
                moment,
                moment,
                "",
                "",
                status.value,
            )


def load_generate(*, spec: LoadSpec, progress: Callable[[str], None] | None = None) -> LoadResult:
    """Fill the database with a generated trust (see the module docstring). Refuses a second load."""
    say = progress or (lambda message: None)
    now = timezone.now()
    end = spec.end or now.replace(minute=0, second=0, microsecond=0)
    rng = random.Random(spec.seed)
    calendar = _Calendar.build(end=end, days=spec.days)
    result = LoadResult(start=datetime.fromtimestamp(calendar.midnights[0], UTC), end=end)

    started = time.perf_counter()
    with transaction.atomic():
        trust = _build_trust(spec, now)
    result.people, result.devices, result.groups = len(trust.person_ids), len(trust.device_ids), trust.groups
    result.seconds["trust"] = time.perf_counter() - started
    say(
        f"trust: {result.people:,} people, {result.devices:,} computers, {result.groups} groups "
        f"in {result.seconds['trust']:.1f} s"
    )

    started = time.perf_counter()
    with transaction.atomic(), _indexes_deferred(ActivityEvent, spec.events):
        result.events = _write(ActivityEvent, EVENT_COLUMNS, _event_rows(rng, spec, trust, calendar))
    result.seconds["events"] = time.perf_counter() - started
    say(
        f"events: {result.events:,} in {result.seconds['events']:.1f} s "
        f"({result.events / max(result.seconds['events'], 1e-9):,.0f} rows/s)"
    )

    started = time.perf_counter()
    with transaction.atomic(), _indexes_deferred(Capture, spec.captures):
        result.captures = _write(Capture, CAPTURE_COLUMNS, _capture_rows(rng, spec, trust, calendar, end))
    result.seconds["captures"] = time.perf_counter() - started
    say(f"captures: {result.captures:,} in {result.seconds['captures']:.1f} s")

    if connection.vendor == "postgresql":
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # Fresh statistics, so the planner sees the new sizes and skew at once (autovacuum would lag).
            for model in (Person, Device, Membership, MonitoringGroup, ActivityEvent, Capture):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        result.seconds["analyze"] = time.perf_counter() - started
        say(f"analyze: {result.seconds['analyze']:.1f} s")
    return result
