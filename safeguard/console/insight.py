"""Insight: the numbers behind the charts at /console/insight/, read by database aggregation.

Every selector here takes the staff member and an `InsightFilters` and reads only what that
member may see (safeguard.core.access): a teacher's Insight is their groups' Insight, and totals
never include a capture outside them. Each chart is one aggregate query (GROUP BY in the
database, never a Python loop over captures); Python only lays the few aggregated rows out in
buckets. Query counts therefore do not grow with the number of captures.

Time: buckets, hours and weekdays are in the school's TIME_ZONE (settings.TIME_ZONE), so a
capture at 21:30 UTC in July is a 22:30 capture on the heatmap.

Risk weights (rising risk): low 1, medium 2, high 4, severe 8. Doubling per step says one severe
capture weighs like eight low ones; a person is "rising" when this week's weighted score is above
their weekly average over the four weeks before.
"""

import math
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import (
    Cast,
    Coalesce,
    ExtractHour,
    ExtractIsoWeekDay,
    TruncDay,
    TruncMonth,
    TruncWeek,
)
from django.utils import timezone

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.confide.selectors import confide_report_list_for_staff
from safeguard.core import access
from safeguard.groups.models import Membership, MonitoringGroup
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Category, Severity

SEVERITY_WEIGHTS: dict[str, int] = {
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 4,
    Severity.SEVERE: 8,
}
RISK_BASELINE_WEEKS = 4
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 3 * 366
TOP_N = 10
FP_TOP_N = 20
# "Out of hours" for the governors' summary: weekends, and weekdays before 08:00 or from 18:00.
SCHOOL_HOURS = (8, 18)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def school_tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class InsightFilters:
    """What the page shows: dates inclusive in the school's time zone; empty groups/categories: all."""

    start: date
    end: date
    group_ids: frozenset[int] = frozenset()
    categories: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=school_tz())

    @property
    def end_at(self) -> datetime:
        """Midnight after the last day (exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=school_tz())

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def bucket(self) -> str:
        """Day buckets up to a month, week buckets up to half a year, months beyond."""
        if self.days <= 31:
            return "day"
        if self.days <= 183:
            return "week"
        return "month"


def insight_default_range(*, today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    today = today or timezone.localdate()
    return today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today


def insight_groups_resolve(*, user, group_uuids: list) -> tuple[frozenset[int], tuple[str, ...], int]:
    """The chosen groups (and their subgroups) the member may see: (ids, names, how many were ignored).

    A group outside the member's access (or unknown) is ignored, never an error that would
    confirm it exists. Their own personal groups may be chosen: those grant nothing, they only
    narrow what access already allows.
    """
    if not group_uuids:
        return frozenset(), (), 0
    visible = access.visible_group_ids(user)
    chosen = list(
        MonitoringGroup.objects.filter(Q(pk__in=visible) | Q(owner_id=user.pk), uuid__in=group_uuids)
        .order_by("name")
        .values_list("pk", "name")
    )
    ids = access._with_descendants({pk for pk, _ in chosen})
    own = set(MonitoringGroup.objects.filter(owner_id=user.pk).values_list("pk", flat=True)) if chosen else set()
    ids &= set(visible) | own
    return frozenset(ids), tuple(name for _, name in chosen), len(set(map(str, group_uuids))) - len(chosen)


# --- Scoped base querysets ----------------------------------------------------------------------


def _members_of(group_ids: frozenset[int], column: str) -> QuerySet:
    return Membership.objects.filter(group_id__in=group_ids, **{f"{column}__isnull": False}).values(column)


def insight_captures(*, user, filters: InsightFilters, since=None, until=None) -> QuerySet[Capture]:
    """The captures behind every chart: the member's, in the range, groups and categories chosen."""
    captures = access.scope_by_person_or_device(Capture.objects.all(), user).filter(
        occurred_at__gte=since or filters.start_at, occurred_at__lt=until or filters.end_at
    )
    if filters.categories:
        captures = captures.filter(policy__category__in=filters.categories)
    if filters.group_ids:
        captures = captures.filter(
            Q(person_id__in=_members_of(filters.group_ids, "person_id"))
            | Q(device_id__in=_members_of(filters.group_ids, "device_id"))
        )
    return captures.order_by()


def _trunc(bucket: str, field_name: str):
    kind = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}[bucket]
    return kind(field_name, tzinfo=school_tz())


def bucket_starts(filters: InsightFilters) -> list[date]:
    """Every bucket of the range, empty ones included (a gap in a chart is a zero, not a skip)."""
    if filters.bucket == "day":
        first, step = filters.start, None
    elif filters.bucket == "week":
        first, step = filters.start - timedelta(days=filters.start.weekday()), None
    else:
        first, step = filters.start.replace(day=1), "month"
    starts: list[date] = []
    current = first
    while current <= filters.end:
        starts.append(current)
        if step == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=1 if filters.bucket == "day" else 7)
    return starts


def _bucket_key(value) -> date:
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = value.astimezone(school_tz())
        return value.date()
    return value


@dataclass
class Series:
    """One chart's data: bucket/row labels and named series of numbers (same length as labels)."""

    labels: list[str]
    series: list[tuple[str, list[int]]]
    keys: list = field(default_factory=list)

    @property
    def totals(self) -> list[int]:
        return [sum(values[i] for _, values in self.series) for i in range(len(self.labels))]


def _bucket_label(start: date, bucket: str) -> str:
    if bucket == "day":
        return start.strftime("%d %b")
    if bucket == "week":
        return "w/c " + start.strftime("%d %b")
    return start.strftime("%b %Y")


def _over_time(rows, *, filters: InsightFilters, series_key: str, names: list[tuple[str, str]]) -> Series:
    """Aggregated (bucket, key, n) rows laid out as one list per series over every bucket."""
    starts = bucket_starts(filters)
    index = {start: i for i, start in enumerate(starts)}
    values = {key: [0] * len(starts) for key, _ in names}
    for row in rows:
        key = row[series_key]
        position = index.get(_bucket_key(row["bucket"]))
        if key in values and position is not None:
            values[key][position] += row["n"]
    return Series(
        labels=[_bucket_label(start, filters.bucket) for start in starts],
        keys=starts,
        series=[(label, values[key]) for key, label in names if any(values[key])],
    )


def insight_by_category(*, user, filters: InsightFilters) -> Series:
    """Captures per bucket, one series per category (uncategorised captures under 'Other')."""
    rows = (
        insight_captures(user=user, filters=filters)
        .annotate(bucket=_trunc(filters.bucket, "occurred_at"), cat=Coalesce("policy__category", Value("other")))
        .values("bucket", "cat")
        .annotate(n=Count("id"))
    )
    return _over_time(rows, filters=filters, series_key="cat", names=list(Category.choices))


def insight_by_severity(*, user, filters: InsightFilters) -> Series:
    rows = (
        insight_captures(user=user, filters=filters)
        .annotate(bucket=_trunc(filters.bucket, "occurred_at"))
        .values("bucket", "severity")
        .annotate(n=Count("id"))
    )
    return _over_time(rows, filters=filters, series_key="severity", names=list(Severity.choices))


def insight_confide_over_time(*, user, filters: InsightFilters) -> Series | None:
    """Confide reports per bucket (named and anonymous), or None without the Confide right.

    Scoped as the Confide viewer scopes them: named reports from people in groups where the
    member holds the Confide right, and every anonymous report (it has no person, so no group).
    A group filter narrows the named reports; anonymous ones cannot be placed in a group, so
    they always count.
    """
    if not access.has_right(user, "confide"):
        return None
    reports = confide_report_list_for_staff(user=user).filter(
        reported_at__gte=filters.start_at, reported_at__lt=filters.end_at
    )
    if filters.group_ids:
        reports = reports.filter(Q(is_anonymous=True) | Q(person_id__in=_members_of(filters.group_ids, "person_id")))
    rows = (
        reports.order_by()
        .annotate(
            bucket=_trunc(filters.bucket, "reported_at"),
            kind=Case(When(is_anonymous=True, then=Value("anonymous")), default=Value("named")),
        )
        .values("bucket", "kind")
        .annotate(n=Count("id"))
    )
    result = _over_time(
        rows, filters=filters, series_key="kind", names=[("named", "Named"), ("anonymous", "Anonymous")]
    )
    return result


@dataclass
class Ranked:
    """Rows of (label, count) and, where a row has a page in the console or admin, its link."""

    rows: list[tuple[str, int]]
    links: list[str] = field(default_factory=list)


def insight_by_group(*, user, filters: InsightFilters) -> Ranked:
    """Captures per group the member sees: people's user groups and devices' device groups.

    A capture counts in each group its person (or device) is a direct member of, so the rows
    may add up to more than the total. Personal groups are left out: they belong to one member.
    """
    groups = access.visible_group_ids(user)
    if filters.group_ids:
        groups = groups & filters.group_ids
    captures = insight_captures(user=user, filters=filters)
    by_person = (
        captures.filter(person__memberships__group_id__in=groups, person__memberships__group__owner__isnull=True)
        .values(gid=F("person__memberships__group_id"), name=F("person__memberships__group__name"))
        .annotate(n=Count("id"))
    )
    by_device = (
        captures.filter(device__memberships__group_id__in=groups, device__memberships__group__owner__isnull=True)
        .values(gid=F("device__memberships__group_id"), name=F("device__memberships__group__name"))
        .annotate(n=Count("id"))
    )
    rows = [(row["name"], row["n"]) for row in list(by_person) + list(by_device)]
    rows.sort(key=lambda row: (-row[1], row[0]))
    return Ranked(rows=rows[: TOP_N * 2])


def insight_top_keywords(*, user, filters: InsightFilters) -> Ranked:
    rows = (
        insight_captures(user=user, filters=filters)
        .values("keyword_text")
        .annotate(n=Count("id"))
        .order_by("-n", "keyword_text")[:TOP_N]
    )
    return Ranked(rows=[(row["keyword_text"], row["n"]) for row in rows])


def insight_top_policies(*, user, filters: InsightFilters) -> Ranked:
    rows = (
        insight_captures(user=user, filters=filters)
        .values("policy__name")
        .annotate(n=Count("id"))
        .order_by("-n", "policy__name")[:TOP_N]
    )
    return Ranked(rows=[(row["policy__name"] or "(policy deleted)", row["n"]) for row in rows])


def insight_status(*, user, filters: InsightFilters) -> Ranked:
    """Captures per status, in workflow order (every status listed, zero or not)."""
    counts = {
        row["status"]: row["n"]
        for row in insight_captures(user=user, filters=filters).values("status").annotate(n=Count("id"))
    }
    return Ranked(rows=[(label, counts.get(value, 0)) for value, label in CaptureStatus.choices])


@dataclass
class Heatmap:
    """Captures per weekday (rows, Monday first) and hour of day (columns) in the school's time zone."""

    cells: list[list[int]]

    @property
    def total(self) -> int:
        return sum(map(sum, self.cells))

    @property
    def out_of_hours(self) -> int:
        start, end = SCHOOL_HOURS
        return sum(
            n for day, row in enumerate(self.cells) for hour, n in enumerate(row) if day >= 5 or not start <= hour < end
        )


def insight_heatmap(*, user, filters: InsightFilters) -> Heatmap:
    tz = school_tz()
    rows = (
        insight_captures(user=user, filters=filters)
        .annotate(weekday=ExtractIsoWeekDay("occurred_at", tzinfo=tz), hour=ExtractHour("occurred_at", tzinfo=tz))
        .values("weekday", "hour")
        .annotate(n=Count("id"))
    )
    cells = [[0] * 24 for _ in range(7)]
    for row in rows:
        cells[row["weekday"] - 1][row["hour"]] += row["n"]
    return Heatmap(cells=cells)


# --- Time to first review ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewTimes:
    """Of the captures in range: how many were reviewed, and the median and 90th percentile of
    (first status change from New) − occurred_at, in seconds (None when nothing was reviewed)."""

    reviewed: int
    median_seconds: float | None
    p90_seconds: float | None


def _interpolate(ranked: dict[int, float], n: int, fraction: float) -> float:
    # percentile_cont: the value at position fraction·(n−1), linear between its neighbours.
    position = fraction * (n - 1)
    low = math.floor(position)
    below = ranked[low]
    above = ranked.get(low + 1, below)
    return below + (above - below) * (position - low)


def insight_review_times(*, user, filters: InsightFilters) -> ReviewTimes:
    """Time to first review, computed in the database.

    The first review is the "capture.status_changed" audit row whose `before` status is New:
    capture_set_status never moves a capture back to New, so each reviewed capture has exactly
    one such row (the earliest change) and no GROUP BY over the audit log is needed (measured:
    the MIN() per capture cost 100–150 ms more at a million captures). Audit rows name captures
    by UUID text, so the join is on text; rows older than the range cannot be a first review of
    a capture in it and are skipped first. PostgreSQL computes the percentiles with
    percentile_cont, with JIT off for the statement (the planner cannot estimate a join on a
    cast, over-estimates it and spends ~100 ms compiling); other databases (SQLite) rank the
    durations with window functions and hand back only the two rows around each percentile,
    which are interpolated the same way.
    """
    captures = insight_captures(user=user, filters=filters).values("uuid", "occurred_at")
    reviews = (
        AuditEntry.objects.filter(
            action="capture.status_changed",
            target_type="capture",
            created_at__gte=filters.start_at,
            before__status=CaptureStatus.NEW,
        )
        .order_by()
        .values("target_id", first_at=F("created_at"))
    )
    try:
        capture_sql, capture_params = captures.query.sql_with_params()
    except EmptyResultSet:  # nothing visible at all (e.g. no group access): nothing to measure
        return ReviewTimes(0, None, None)
    review_sql, review_params = reviews.query.sql_with_params()
    params = (*capture_params, *review_params)
    if connection.vendor == "postgresql":
        sql = f"""
            SELECT COUNT(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY d),
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY d)
            FROM (SELECT EXTRACT(EPOCH FROM (r.first_at - c.occurred_at)) AS d
                  FROM ({capture_sql}) c JOIN ({review_sql}) r ON r.target_id = c.uuid::text) t
        """  # noqa: S608 (both parts are Django-compiled SQL with their own parameters)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(sql, params)
            count, median, p90 = cursor.fetchone()
        if not count:
            return ReviewTimes(0, None, None)
        return ReviewTimes(count, float(median), float(p90))
    sql = f"""
        WITH t AS (SELECT (julianday(r.first_at) - julianday(c.occurred_at)) * 86400.0 AS d
                   FROM ({capture_sql}) c JOIN ({review_sql}) r ON replace(r.target_id, '-', '') = c.uuid),
             ranked AS (SELECT d, ROW_NUMBER() OVER (ORDER BY d) - 1 AS i, COUNT(*) OVER () AS n FROM t)
        SELECT i, n, d FROM ranked
        WHERE i IN (CAST(0.5 * (n - 1) AS INTEGER), CAST(0.5 * (n - 1) AS INTEGER) + 1,
                    CAST(0.9 * (n - 1) AS INTEGER), CAST(0.9 * (n - 1) AS INTEGER) + 1)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return ReviewTimes(0, None, None)
    n = rows[0][1]
    ranked = {i: float(d) for i, _n, d in rows}
    return ReviewTimes(n, _interpolate(ranked, n, 0.5), _interpolate(ranked, n, 0.9))


# --- Rising risk -------------------------------------------------------------------------------


def _weight() -> Case:
    return Case(
        *[When(severity=value, then=Value(weight)) for value, weight in SEVERITY_WEIGHTS.items()],
        default=Value(0),
        output_field=IntegerField(),
    )


@dataclass(frozen=True)
class RisingPerson:
    person_uuid: str
    name: str
    username: str
    this_week: int
    baseline_weekly: float
    score: int
    baseline_score_weekly: float
    explanation: str


def _average(total: int) -> str:
    return f"{total / RISK_BASELINE_WEEKS:g}"


def insight_rising_risk(*, user, filters: InsightFilters) -> list[RisingPerson]:
    """People whose severity-weighted captures this week exceed their weekly average of the 4 weeks before.

    "This week" is the 7 days up to the end of the chosen range (or now, if sooner); categories
    and groups filter as elsewhere. One aggregate ranks everyone (conditional sums grouped by
    person, the comparison in HAVING); a second explains the top N, grouped by person,
    severity and category.
    """
    anchor = min(filters.end_at, timezone.now())
    week_start = anchor - timedelta(days=7)
    base_start = week_start - timedelta(days=7 * RISK_BASELINE_WEEKS)
    captures = insight_captures(user=user, filters=filters, since=base_start, until=anchor)
    this_week = Q(occurred_at__gte=week_start)
    before = Q(occurred_at__lt=week_start)
    ranked = list(
        captures.values("person_id", "person__uuid", "person__display_name", "person__username")
        .annotate(
            score=Coalesce(Sum(_weight(), filter=this_week), 0),
            base_score=Coalesce(Sum(_weight(), filter=before), 0),
            this_count=Count("id", filter=this_week),
            base_count=Count("id", filter=before),
        )
        # score > base_score / 4, kept in integers.
        .annotate(rise=F("score") * RISK_BASELINE_WEEKS - F("base_score"))
        .filter(score__gt=0, rise__gt=0)
        .order_by("-rise", "-score", "person__username")[:TOP_N]
    )
    if not ranked:
        return []
    detail: dict[int, list[dict]] = {}
    for row in (
        captures.filter(person_id__in=[row["person_id"] for row in ranked])
        .values("person_id", "severity", cat=Coalesce("policy__category", Value("other")))
        .annotate(this_count=Count("id", filter=this_week), base_count=Count("id", filter=before))
    ):
        detail.setdefault(row["person_id"], []).append(row)
    return [
        RisingPerson(
            person_uuid=str(row["person__uuid"]),
            name=row["person__display_name"] or row["person__username"],
            username=row["person__username"],
            this_week=row["this_count"],
            baseline_weekly=row["base_count"] / RISK_BASELINE_WEEKS,
            score=row["score"],
            baseline_score_weekly=row["base_score"] / RISK_BASELINE_WEEKS,
            explanation=_explain(row, detail.get(row["person_id"], [])),
        )
        for row in ranked
    ]


def _explain(row: dict, parts: list[dict]) -> str:
    """ "3 severe self-harm captures this week, up from 0 a week on average" (+ the whole picture)."""
    labels = dict(Category.choices)
    main = max(
        (part for part in parts if part["this_count"]),
        key=lambda part: (
            part["this_count"] * SEVERITY_WEIGHTS.get(part["severity"], 0),
            Severity.rank(part["severity"]),
        ),
    )
    count = main["this_count"]
    what = f"{Severity(main['severity']).label.lower()} {labels.get(main['cat'], main['cat']).lower()}"
    text = f"{count} {what} capture{'s' if count != 1 else ''} this week, up from {_average(main['base_count'])} a week on average"
    if row["this_count"] > count:
        text += (
            f"; {row['this_count']} captures in all (weighted score {row['score']}, "
            f"weekly average {_average(row['base_score'])})"
        )
    return text


# --- False positives ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FalsePositiveRow:
    label: str
    policy_id: int | None
    policy_name: str
    false_positives: int
    total: int

    @property
    def rate(self) -> float:
        return self.false_positives / self.total if self.total else 0.0


def _fp_rows(captures: QuerySet, group_by: tuple[str, ...]) -> QuerySet:
    fp = Q(status=CaptureStatus.RESOLVED_FALSE_POSITIVE)
    return (
        captures.values(*group_by)
        .annotate(total=Count("id"), fp=Count("id", filter=fp))
        .filter(fp__gt=0)
        .annotate(rate=Cast(F("fp"), FloatField()) / Cast(F("total"), FloatField()))
        .order_by("-rate", "-total", *group_by)[:FP_TOP_N]
    )


def insight_false_positives_by_keyword(*, user, filters: InsightFilters) -> list[FalsePositiveRow]:
    """Keywords with at least one capture resolved as a false positive, highest rate first."""
    rows = _fp_rows(insight_captures(user=user, filters=filters), ("keyword_text", "policy_id", "policy__name"))
    return [
        FalsePositiveRow(row["keyword_text"], row["policy_id"], row["policy__name"] or "", row["fp"], row["total"])
        for row in rows
    ]


def insight_false_positives_by_policy(*, user, filters: InsightFilters) -> list[FalsePositiveRow]:
    rows = _fp_rows(insight_captures(user=user, filters=filters), ("policy_id", "policy__name"))
    return [
        FalsePositiveRow(
            row["policy__name"] or "(policy deleted)",
            row["policy_id"],
            row["policy__name"] or "",
            row["fp"],
            row["total"],
        )
        for row in rows
    ]


# --- Headline numbers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    total: int
    unreviewed: int
    false_positives: int
    severe: int


def insight_headline(*, user, filters: InsightFilters) -> Headline:
    row = insight_captures(user=user, filters=filters).aggregate(
        total=Count("id"),
        unreviewed=Count("id", filter=Q(status=CaptureStatus.NEW)),
        false_positives=Count("id", filter=Q(status=CaptureStatus.RESOLVED_FALSE_POSITIVE)),
        severe=Count("id", filter=Q(severity=Severity.SEVERE)),
    )
    return Headline(**row)


def insight_confide_total(*, series: Series | None) -> int | None:
    return None if series is None else sum(series.totals)


def format_duration(seconds: float | None) -> str:
    """'45 min', '3 h 20 min', '2 d 4 h' — or '—' when there is nothing to measure."""
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
