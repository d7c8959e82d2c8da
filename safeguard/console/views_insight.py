"""Console: Insight, the analytics page at /console/insight/, its CSV downloads and the governors' PDF.

Thin on purpose: the numbers come from safeguard.console.insight (aggregate queries scoped to
the staff member), the pictures from safeguard.console.charts (server-rendered SVG). Each
panel is built from one selector, and its chart, data table and CSV share the same rows, so
what the chart shows, the table reads out and the download holds are always the same numbers.
"""

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from safeguard.console import charts, insight
from safeguard.console.insight import InsightFilters, format_duration
from safeguard.console.views import console_login_required
from safeguard.console.views_captures import frame_context
from safeguard.console.views_logs import csv_safe
from safeguard.core import access
from safeguard.logs.services import audit_record
from safeguard.policies.models import Category


@dataclass
class Panel:
    """One chart (or list) of the page: its picture, and the table that reads it out (also its CSV)."""

    name: str
    title: str
    headers: list[str]
    rows: list[list]
    svg: SafeString | None = None
    # Per row: a link for the first column (a person's timeline, a policy's admin page), or "".
    links: list[str] = field(default_factory=list)
    note: str = ""
    # For time series: each series' total over the range, e.g. [("Self-harm", 12), ...].
    series_totals: list[tuple[str, int]] = field(default_factory=list)

    @property
    def linked_rows(self) -> list[tuple[str, list]]:
        """(link or "", row) pairs for the template."""
        return [(self.links[i] if i < len(self.links) else "", row) for i, row in enumerate(self.rows)]


def _series_panel(name: str, title: str, data: insight.Series, *, line: bool = False) -> Panel:
    names = [series_name for series_name, _ in data.series]
    rows = [[label, *[values[i] for _, values in data.series], data.totals[i]] for i, label in enumerate(data.labels)]
    draw = charts.line_chart if line else charts.stacked_bar_chart
    return Panel(
        name=name,
        title=title,
        headers=["Period starting", *names, "Total"],
        rows=rows,
        svg=draw(chart_id=f"chart-{name}", title=title, labels=data.labels, series=data.series),
        series_totals=[(series_name, sum(values)) for series_name, values in data.series],
    )


def _ranked_panel(name: str, title: str, first: str, data: insight.Ranked) -> Panel:
    return Panel(
        name=name,
        title=title,
        headers=[first, "Captures"],
        rows=[[label, n] for label, n in data.rows],
        svg=charts.bar_chart(chart_id=f"chart-{name}", title=title, rows=data.rows),
    )


def _panel_by_category(user, filters: InsightFilters) -> Panel:
    return _series_panel(
        "by_category", "Captures over time by category", insight.insight_by_category(user=user, filters=filters)
    )


def _panel_by_severity(user, filters: InsightFilters) -> Panel:
    return _series_panel(
        "by_severity", "Captures over time by severity", insight.insight_by_severity(user=user, filters=filters)
    )


def _panel_by_group(user, filters: InsightFilters) -> Panel:
    return _ranked_panel("by_group", "Captures by group", "Group", insight.insight_by_group(user=user, filters=filters))


def _panel_keywords(user, filters: InsightFilters) -> Panel:
    return _ranked_panel(
        "top_keywords", "Top keywords", "Keyword", insight.insight_top_keywords(user=user, filters=filters)
    )


def _panel_policies(user, filters: InsightFilters) -> Panel:
    return _ranked_panel(
        "top_policies", "Top policies", "Policy", insight.insight_top_policies(user=user, filters=filters)
    )


def _panel_status(user, filters: InsightFilters) -> Panel:
    return _ranked_panel("status", "Captures by status", "Status", insight.insight_status(user=user, filters=filters))


def _panel_heatmap(user, filters: InsightFilters) -> Panel:
    data = insight.insight_heatmap(user=user, filters=filters)
    hours = [f"{hour:02d}" for hour in range(24)]
    title = f"Captures by time of day and weekday ({insight.school_tz().key})"
    return Panel(
        name="heatmap",
        title=title,
        headers=["Day", *[f"{hour}:00" for hour in hours], "Total"],
        rows=[[day, *row, sum(row)] for day, row in zip(insight.WEEKDAYS, data.cells, strict=True)],
        svg=charts.heatmap(
            chart_id="chart-heatmap", title=title, row_labels=insight.WEEKDAYS, col_labels=hours, cells=data.cells
        ),
        note=f"{data.out_of_hours} of {data.total} outside 08:00–18:00 on weekdays or at the weekend.",
    )


def _panel_confide(user, filters: InsightFilters) -> Panel | None:
    data = insight.insight_confide_over_time(user=user, filters=filters)
    if data is None:
        return None
    data.series = data.series or [("Named", [0] * len(data.labels))]
    return _series_panel("confide", "Confide reports over time", data, line=True)


def _panel_review(user, filters: InsightFilters) -> Panel:
    times = insight.insight_review_times(user=user, filters=filters)
    seconds = [times.median_seconds, times.p90_seconds]
    return Panel(
        name="review_time",
        title="Time to first review",
        headers=["Measure", "Value", "Seconds"],
        rows=[
            ["Captures reviewed", times.reviewed, ""],
            ["Median", format_duration(seconds[0]), "" if seconds[0] is None else round(seconds[0])],
            ["90th percentile", format_duration(seconds[1]), "" if seconds[1] is None else round(seconds[1])],
        ],
        note="From the capture to its first status change away from New.",
    )


def _timeline_url(person_uuid: str) -> str:
    return f"{reverse('console:logs')}?{urlencode({'tab': 'timeline', 'person': person_uuid})}"


def _panel_rising(user, filters: InsightFilters) -> Panel:
    people = insight.insight_rising_risk(user=user, filters=filters)
    weights = ", ".join(f"{severity} {weight}" for severity, weight in insight.SEVERITY_WEIGHTS.items())
    return Panel(
        name="rising_risk",
        title="People whose risk is rising",
        headers=[
            "Person",
            "Username",
            "Captures this week",
            "Weekly average before",
            "Score",
            "Weekly score before",
            "Why",
        ],
        rows=[
            [
                p.name,
                p.username,
                p.this_week,
                f"{p.baseline_weekly:g}",
                p.score,
                f"{p.baseline_score_weekly:g}",
                p.explanation,
            ]
            for p in people
        ],
        links=[_timeline_url(p.person_uuid) for p in people],
        svg=charts.bar_chart(
            chart_id="chart-rising_risk",
            title="Weighted score this week",
            rows=[(p.name, p.score) for p in people],
        )
        if people
        else None,
        note=f"The 7 days to the end of the range against the 4 weeks before; weights: {weights}.",
    )


def _can_tune(user) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm("policies.change_keywordpolicy"))


def _fp_panel(name: str, title: str, first: str, rows: list[insight.FalsePositiveRow], user) -> Panel:
    tune = _can_tune(user)
    return Panel(
        name=name,
        title=title,
        headers=[first, "Policy", "False positives", "Captures", "Rate (%)"],
        rows=[[row.label, row.policy_name, row.false_positives, row.total, round(row.rate * 100, 1)] for row in rows],
        links=[
            reverse("admin:policies_keywordpolicy_change", args=[row.policy_id]) if tune and row.policy_id else ""
            for row in rows
        ],
        svg=charts.bar_chart(
            chart_id=f"chart-{name}", title=title, rows=[(row.label, round(row.rate * 100)) for row in rows], unit="%"
        )
        if rows
        else None,
        note="Captures resolved as a false positive out of all captures. "
        + ("Follow a link to tune or exclude the keyword in its policy." if tune else ""),
    )


def _panel_fp_keywords(user, filters: InsightFilters) -> Panel:
    return _fp_panel(
        "fp_keywords",
        "False-positive rate by keyword",
        "Keyword",
        insight.insight_false_positives_by_keyword(user=user, filters=filters),
        user,
    )


def _panel_fp_policies(user, filters: InsightFilters) -> Panel:
    return _fp_panel(
        "fp_policies",
        "False-positive rate by policy",
        "Policy",
        insight.insight_false_positives_by_policy(user=user, filters=filters),
        user,
    )


PANELS: dict[str, Callable[..., Panel | None]] = {
    "by_category": _panel_by_category,
    "by_severity": _panel_by_severity,
    "rising_risk": _panel_rising,
    "heatmap": _panel_heatmap,
    "by_group": _panel_by_group,
    "top_keywords": _panel_keywords,
    "top_policies": _panel_policies,
    "status": _panel_status,
    "review_time": _panel_review,
    "confide": _panel_confide,
    "fp_keywords": _panel_fp_keywords,
    "fp_policies": _panel_fp_policies,
}


# --- Filters ----------------------------------------------------------------------------------


def _date(raw: str, notes: list[str], label: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        notes.append(f"Ignored the {label} date: it is not a date.")
        return None


def filters_from_request(request: HttpRequest, notes: list[str]) -> InsightFilters:
    """The page's filters from the query string; anything unusable is ignored and said so."""
    default_start, default_end = insight.insight_default_range()
    end = _date(request.GET.get("to", ""), notes, "end") or default_end
    start = _date(request.GET.get("from", ""), notes, "start") or (end - timedelta(days=insight.DEFAULT_RANGE_DAYS - 1))
    if start > end:
        start, end = end, start
        notes.append("Swapped the dates: the start was after the end.")
    if (end - start).days + 1 > insight.MAX_RANGE_DAYS:
        start = end - timedelta(days=insight.MAX_RANGE_DAYS - 1)
        notes.append(f"Shortened the range to {insight.MAX_RANGE_DAYS} days.")
    categories = tuple(value for value in request.GET.getlist("category") if value in Category.values)
    if len(categories) != len(request.GET.getlist("category")):
        notes.append("Ignored an unknown category.")
    group_uuids = []
    for raw in request.GET.getlist("group"):
        try:
            group_uuids.append(uuid.UUID(raw))
        except ValueError:
            notes.append("Ignored a group that is not one of yours.")
    group_ids, group_names, ignored = insight.insight_groups_resolve(user=request.user, group_uuids=group_uuids)
    if ignored:
        notes.append("Ignored a group that is not one of yours.")
    return InsightFilters(start=start, end=end, group_ids=group_ids, categories=categories, group_names=group_names)


def _query_without(request: HttpRequest, *drop: str) -> str:
    query = request.GET.copy()
    for key in drop:
        query.pop(key, None)
    return query.urlencode()


def _filename(stem: str, filters: InsightFilters, extension: str) -> str:
    return f"insight-{stem}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.{extension}"


def _csv_response(panel: Panel, filters: InsightFilters) -> HttpResponse:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # a byte-order mark, so spreadsheet programs read UTF-8
    writer = csv.writer(buffer)
    writer.writerow([csv_safe(cell) for cell in panel.headers])
    for row in panel.rows:
        writer.writerow([csv_safe(cell) for cell in row])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(panel.name, filters, "csv")}"'
    return response


def _describe(filters: InsightFilters) -> dict:
    return {
        "from": filters.start.isoformat(),
        "to": filters.end.isoformat(),
        "groups": list(filters.group_names),
        "categories": list(filters.categories),
    }


# --- Views ------------------------------------------------------------------------------------


@console_login_required
@require_GET
def insight_page(request: HttpRequest) -> HttpResponse:
    """The Insight page, or with `?format=csv&chart=<name>` one chart's data as CSV (audited)."""
    notes: list[str] = []
    filters = filters_from_request(request, notes)
    if request.GET.get("format") == "csv":
        builder = PANELS.get(request.GET.get("chart", ""))
        panel = builder(request.user, filters) if builder else None
        if panel is None:
            raise Http404("No such chart.")
        audit_record(
            action="insight.exported_csv",
            actor=request.user,
            target_type="insight",
            target_id=panel.name,
            summary=f"Downloaded the Insight data '{panel.title}' as CSV",
            after={"format": "csv", "chart": panel.name, **_describe(filters)},
        )
        return _csv_response(panel, filters)
    query = _query_without(request, "format", "chart")
    # The groups filter has been read (and any unusable group noted) above; the frame only needs
    # to know which group the tree highlights, so its own note would say the same thing twice.
    context = frame_context(request, area="insight", notes=[])
    panels = [panel for panel in (builder(request.user, filters) for builder in PANELS.values()) if panel]
    headline = insight.insight_headline(user=request.user, filters=filters)
    review = next(panel for panel in panels if panel.name == "review_time")
    confide = next((panel for panel in panels if panel.name == "confide"), None)
    return render(
        request,
        "console/insight.html",
        {
            **context,
            "filters": filters,
            "notes": notes,
            "panels": panels,
            "headline": headline,
            "review": review,
            "confide_total": sum(row[-1] for row in confide.rows) if confide else None,
            "csv_query": f"{query}&" if query else "",
            "query": query,
            "categories": [(value, label, value in filters.categories) for value, label in Category.choices],
            "group_choices": _group_choices(request.user, filters),
            "weights": insight.SEVERITY_WEIGHTS,
        },
    )


def _group_choices(user, filters: InsightFilters) -> list[tuple[str, str, bool]]:
    from safeguard.groups.models import MonitoringGroup

    groups = MonitoringGroup.objects.filter(pk__in=access.visible_group_ids(user), owner__isnull=True).order_by(
        "kind", "name"
    )
    chosen = set(filters.group_names)
    return [(str(group.uuid), group.name, group.name in chosen) for group in groups.only("uuid", "name", "kind")]


@console_login_required
@require_GET
def insight_summary_pdf(request: HttpRequest) -> HttpResponse:
    """The governors' summary as a PDF: headline numbers and aggregate tables, no pupil named. Audited."""
    from safeguard.captures.pdf import export_stamp, render_pdf

    notes: list[str] = []
    filters = filters_from_request(request, notes)
    user = request.user
    panels = {name: builder(user, filters) for name, builder in PANELS.items() if name != "rising_risk"}
    headline = insight.insight_headline(user=user, filters=filters)
    heat = insight.insight_heatmap(user=user, filters=filters)
    confide = panels.get("confide")
    html = render_to_string(
        "console/insight_summary_pdf.html",
        {
            "filters": filters,
            "headline": headline,
            "panels": panels,
            "out_of_hours": heat.out_of_hours,
            "confide_total": sum(row[-1] for row in confide.rows) if confide else None,
            "fp_rate": round(100 * headline.false_positives / headline.total, 1) if headline.total else None,
            "school_tz": insight.school_tz().key,
            **export_stamp(user),
        },
    )
    pdf = render_pdf(html)
    audit_record(
        action="insight.exported_pdf",
        actor=user,
        target_type="insight",
        target_id="summary",
        summary=f"Exported the Insight summary for {filters.start:%d %b %Y}–{filters.end:%d %b %Y} to PDF",
        after={"format": "pdf", "bytes": len(pdf), **_describe(filters)},
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{_filename("summary", filters, "pdf")}"'
    response["Cache-Control"] = "no-store"
    return response
