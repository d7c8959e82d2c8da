"""Insight (/console/insight/): every number checked against a small hand-computed school week.

The week: Monday 1 to Sunday 7 July 2024 in Europe/London (BST, UTC+1), so times below are
written in UTC and the expected buckets, hours and weekdays are the local ones.

  capture  person   keyword (policy, severity)      occurred (UTC)   local          status           first review
  A        pupil9   cut myself (Self-harm, severe)  01 Jul 09:30     Mon 10:30      resolved_action  +30 min
  B        pupil9   worthless (Self-harm, high)     01 Jul 21:30     Mon 22:30      under_review     +2 h
  C        pupil9   loser (Bullying, low)           03 Jul 07:15     Wed 08:15      false positive   +1 h
  D        pupil9   loser (Bullying, low)           06 Jul 12:00     Sat 13:00      false positive   +4 h
  E        pupil9   cut myself (Self-harm, severe)  06 Jul 23:30     Sun 7th 00:30  new              —
  F        pupil9   ugly (Bullying, medium)         30 Jun 23:30     Mon 1st 00:30  new              —
  G        pupil9   ugly (Bullying, medium)         07 Jul 23:30     Mon 8th 00:30  (outside the range)
  H        pupil10  loser (Bullying, low)           02 Jul 10:00     Tue 11:00      false positive   +10 min
  I        pupil10  cut myself (Self-harm, severe)  04 Jul 10:00     Thu 11:00      escalated        +8 h
  J        pupil10  worthless (Self-harm, high)     04 Jul 11:00     Thu 12:00      false positive   +3 h (then +5 h)

Baselines (the four weeks before, 3–30 June): pupil9 two low bullying captures; pupil10 eight
severe self-harm captures.
"""

import csv
import io
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pypdf import PdfReader

from safeguard.captures.models import CaptureStatus
from safeguard.captures.services import capture_set_status
from safeguard.confide.models import ConfideReport
from safeguard.console import insight
from safeguard.console.insight import InsightFilters
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Category, Severity
from tests.factories import (
    CaptureFactory,
    ConfideReportFactory,
    DeviceFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

START, END = date(2024, 7, 1), date(2024, 7, 7)
URL = "/console/insight/"
RANGE = {"from": "2024-07-01", "to": "2024-07-07"}


def utc(day: int, hour: int, minute: int = 0, month: int = 7) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def review(monkeypatch, capture, status: str, at: datetime, actor) -> None:
    """Change the status through the real service, with the clock at `at` (the audit row's time)."""
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: at)
        assert capture_set_status(capture=capture, status=status, actor=actor)


@pytest.fixture
def week(cast, monkeypatch, settings):
    settings.TIME_ZONE = "Europe/London"
    self_harm = KeywordPolicyFactory(name="Self-harm words", category=Category.SELF_HARM)
    bullying = KeywordPolicyFactory(name="Bullying words", category=Category.BULLYING)
    cut = KeywordFactory(policy=self_harm, text="cut myself", severity=Severity.SEVERE)
    worthless = KeywordFactory(policy=self_harm, text="worthless", severity=Severity.HIGH)
    loser = KeywordFactory(policy=bullying, text="loser", severity=Severity.LOW)
    ugly = KeywordFactory(policy=bullying, text="ugly", severity=Severity.MEDIUM)

    def capture(person, keyword, at):
        device = cast.device9 if person == cast.pupil9 else cast.device10
        return CaptureFactory(person=person, device=device, keyword=keyword, occurred_at=at, screenshot="")

    p9, p10 = cast.pupil9, cast.pupil10
    c = {
        "A": capture(p9, cut, utc(1, 9, 30)),
        "B": capture(p9, worthless, utc(1, 21, 30)),
        "C": capture(p9, loser, utc(3, 7, 15)),
        "D": capture(p9, loser, utc(6, 12)),
        "E": capture(p9, cut, utc(6, 23, 30)),
        "F": capture(p9, ugly, utc(30, 23, 30, month=6)),
        "G": capture(p9, ugly, utc(7, 23, 30)),
        "H": capture(p10, loser, utc(2, 10)),
        "I": capture(p10, cut, utc(4, 10)),
        "J": capture(p10, worthless, utc(4, 11)),
    }
    lead = cast.lead
    review(monkeypatch, c["A"], CaptureStatus.RESOLVED_ACTION, utc(1, 10), lead)
    review(monkeypatch, c["B"], CaptureStatus.UNDER_REVIEW, utc(1, 23, 30), lead)
    review(monkeypatch, c["C"], CaptureStatus.RESOLVED_FALSE_POSITIVE, utc(3, 8, 15), lead)
    review(monkeypatch, c["D"], CaptureStatus.RESOLVED_FALSE_POSITIVE, utc(6, 16), lead)
    review(monkeypatch, c["H"], CaptureStatus.RESOLVED_FALSE_POSITIVE, utc(2, 10, 10), lead)
    review(monkeypatch, c["I"], CaptureStatus.ESCALATED, utc(4, 18), lead)
    review(monkeypatch, c["J"], CaptureStatus.UNDER_REVIEW, utc(4, 14), lead)
    review(monkeypatch, c["J"], CaptureStatus.RESOLVED_FALSE_POSITIVE, utc(4, 16), lead)
    review(monkeypatch, c["G"], CaptureStatus.UNDER_REVIEW, utc(8, 9), lead)  # outside the range: not counted
    for day in (10, 17):
        capture(p9, loser, utc(day, 12, month=6))
    for day in (4, 5, 11, 12, 18, 19, 25, 26):
        capture(p10, cut, utc(day, 12, month=6))
    # Confide: two named on 2 July (one per year group), one anonymous on 5 July, one after the range.
    ConfideReportFactory(person=p9, device=cast.device9, reported_at=utc(2, 9))
    ConfideReportFactory(person=p10, device=cast.device10, reported_at=utc(2, 13))
    ConfideReportFactory(is_anonymous=True, person=None, device=None, reported_at=utc(5, 14))
    ConfideReportFactory(person=p9, device=cast.device9, reported_at=utc(10, 9))
    cast.captures = c
    return cast


def filters(**extra) -> InsightFilters:
    return InsightFilters(start=START, end=END, **extra)


def series(data: insight.Series) -> dict[str, list[int]]:
    return dict(data.series)


# --- Aggregations against the hand-computed week ----------------------------------------------------


def test_captures_over_time_by_category_in_day_buckets_of_the_school_time_zone(week):
    data = insight.insight_by_category(user=week.lead, filters=filters())
    assert data.keys == [date(2024, 7, day) for day in range(1, 8)]
    # F (23:30 UTC on 30 June) is 1 July locally; E (23:30 UTC on 6 July) is 7 July; G is 8 July: out.
    assert series(data) == {
        "Self-harm": [2, 0, 0, 2, 0, 0, 1],
        "Bullying and harassment": [1, 1, 1, 0, 0, 1, 0],
    }
    assert data.totals == [3, 1, 1, 2, 0, 1, 1]


def test_captures_over_time_by_severity(week):
    data = insight.insight_by_severity(user=week.lead, filters=filters())
    assert series(data) == {
        "Low": [0, 1, 1, 0, 0, 1, 0],
        "Medium": [1, 0, 0, 0, 0, 0, 0],
        "High": [1, 0, 0, 1, 0, 0, 0],
        "Severe": [1, 0, 0, 1, 0, 0, 1],
    }


def test_week_and_month_buckets_follow_the_length_of_the_range(week):
    weeks = insight.insight_by_severity(
        user=week.lead, filters=InsightFilters(start=date(2024, 6, 1), end=date(2024, 7, 31))
    )
    assert weeks.keys[0] == date(2024, 5, 27)  # the Monday of the week holding 1 June
    by_week = dict(zip(weeks.keys, weeks.totals, strict=True))
    assert by_week[date(2024, 6, 3)] == 2 + 0  # pupil9 10 June is the next week; pupil10 4, 5 June
    assert by_week[date(2024, 7, 1)] == 9
    assert by_week[date(2024, 7, 8)] == 1  # G, Monday 8 July locally
    months = insight.insight_by_severity(
        user=week.lead, filters=InsightFilters(start=date(2024, 1, 1), end=date(2024, 12, 31))
    )
    by_month = dict(zip(months.keys, months.totals, strict=True))
    assert len(months.keys) == 12
    assert by_month[date(2024, 6, 1)] == 10  # the baselines (F is 1 July locally)
    assert by_month[date(2024, 7, 1)] == 10  # A–J


def test_heatmap_cells_are_local_weekday_and_hour(week):
    heat = insight.insight_heatmap(user=week.lead, filters=filters())
    expected = {(0, 10): 1, (0, 22): 1, (0, 0): 1, (2, 8): 1, (5, 13): 1, (6, 0): 1, (1, 11): 1, (3, 11): 1, (3, 12): 1}
    cells = {(day, hour): n for day, row in enumerate(heat.cells) for hour, n in enumerate(row) if n}
    assert cells == expected
    assert heat.total == 9
    assert heat.out_of_hours == 4  # B (22:30), F (00:30), D (Saturday), E (Sunday)


def test_top_keywords_policies_and_status(week):
    user, f = week.lead, filters()
    assert insight.insight_top_keywords(user=user, filters=f).rows == [
        ("cut myself", 3),
        ("loser", 3),
        ("worthless", 2),
        ("ugly", 1),
    ]
    assert insight.insight_top_policies(user=user, filters=f).rows == [("Self-harm words", 5), ("Bullying words", 4)]
    assert insight.insight_status(user=user, filters=f).rows == [
        ("New", 2),
        ("Under review", 1),
        ("Escalated", 1),
        ("Resolved: action taken", 1),
        ("Resolved: false positive", 4),
    ]
    assert insight.insight_by_group(user=user, filters=f).rows == [("Year 9", 6), ("Year 10", 3)]


def test_time_to_first_review_median_and_90th_percentile(week):
    times = insight.insight_review_times(user=week.lead, filters=filters())
    # Minutes to the first change: H 10, A 30, C 60, B 120, J 180 (not 300: its second change), D 240, I 480.
    assert times.reviewed == 7
    assert times.median_seconds == pytest.approx(120 * 60, abs=0.01)
    # Position 0.9 × 6 = 5.4: 240 + 0.4 × (480 − 240) = 336 minutes.
    assert times.p90_seconds == pytest.approx(336 * 60, abs=0.01)


def test_time_to_first_review_for_a_teacher_counts_their_captures_only(week):
    times = insight.insight_review_times(user=week.teacher9, filters=filters())
    # A 30, C 60, B 120, D 240: median between 60 and 120; p90 at 2.7 → 120 + 0.7 × 120.
    assert times.reviewed == 4
    assert times.median_seconds == pytest.approx(90 * 60, abs=0.01)
    assert times.p90_seconds == pytest.approx(204 * 60, abs=0.01)


def test_time_to_first_review_with_nothing_reviewed(week):
    times = insight.insight_review_times(
        user=week.lead, filters=InsightFilters(start=date(2024, 6, 1), end=date(2024, 6, 28))
    )
    assert times == insight.ReviewTimes(0, None, None)


def test_rising_risk_weighs_severity_against_the_four_week_baseline(week):
    people = insight.insight_rising_risk(user=week.lead, filters=filters())
    # pupil9: this week 8+4+1+1+8+2 = 24 against 2/4 = 0.5 a week → rising.
    # pupil10: 1+8+4 = 13 against 8 × 8 / 4 = 16 a week → not rising.
    assert [p.username for p in people] == [week.pupil9.username]
    person = people[0]
    assert (person.this_week, person.baseline_weekly, person.score, person.baseline_score_weekly) == (6, 0.5, 24, 0.5)
    assert person.explanation == (
        "2 severe self-harm captures this week, up from 0 a week on average; "
        "6 captures in all (weighted score 24, weekly average 0.5)"
    )


def test_rising_risk_follows_the_category_filter(week):
    people = insight.insight_rising_risk(user=week.lead, filters=filters(categories=(Category.BULLYING,)))
    # Bullying only. pupil9: C, D (low, 1 each) + F (medium, 2) = 4 against 2/4 a week: rise 4×4 − 2 = 14.
    # pupil10: H (low) = 1 against nothing: rise 4. The headline part is the heaviest (severity,
    # category) of the week; low×2 and medium×1 weigh the same, and the more severe one wins.
    assert [(p.username, p.score, p.explanation) for p in people] == [
        (
            week.pupil9.username,
            4,
            "1 medium bullying and harassment capture this week, up from 0 a week on average; "
            "3 captures in all (weighted score 4, weekly average 0.5)",
        ),
        (week.pupil10.username, 1, "1 low bullying and harassment capture this week, up from 0 a week on average"),
    ]


def test_false_positive_rates_per_keyword_and_policy(week):
    by_keyword = insight.insight_false_positives_by_keyword(user=week.lead, filters=filters())
    assert [(r.label, r.policy_name, r.false_positives, r.total, r.rate) for r in by_keyword] == [
        ("loser", "Bullying words", 3, 3, 1.0),
        ("worthless", "Self-harm words", 1, 2, 0.5),
    ]
    by_policy = insight.insight_false_positives_by_policy(user=week.lead, filters=filters())
    assert [(r.label, r.false_positives, r.total, r.rate) for r in by_policy] == [
        ("Bullying words", 3, 4, 0.75),
        ("Self-harm words", 1, 5, 0.2),
    ]


def test_confide_over_time_counts_anonymous_reports_for_every_confide_viewer(week):
    data = insight.insight_confide_over_time(user=week.lead, filters=filters())
    assert series(data) == {"Named": [0, 2, 0, 0, 0, 0, 0], "Anonymous": [0, 0, 0, 0, 1, 0, 0]}
    viewer9 = StaffAccessFactory(
        user=StaffUserFactory(username="confide9"), group=week.year9, can_view_captures=False, is_confide_viewer=True
    ).user
    data = insight.insight_confide_over_time(user=viewer9, filters=filters())
    assert series(data) == {"Named": [0, 1, 0, 0, 0, 0, 0], "Anonymous": [0, 0, 0, 0, 1, 0, 0]}
    assert insight.insight_headline(user=viewer9, filters=filters()).total == 0  # no capture right


def test_confide_is_not_counted_without_the_confide_right(week):
    assert insight.insight_confide_over_time(user=week.teacher9, filters=filters()) is None


def test_headline(week):
    assert insight.insight_headline(user=week.lead, filters=filters()) == insight.Headline(
        total=9, unreviewed=2, false_positives=4, severe=3
    )


# --- Scoping ---------------------------------------------------------------------------------------


def test_teacher9_sees_only_year9_numbers(week):
    user, f = week.teacher9, filters()
    assert insight.insight_headline(user=user, filters=f) == insight.Headline(
        total=6, unreviewed=2, false_positives=2, severe=2
    )
    assert series(insight.insight_by_category(user=user, filters=f)) == {
        "Self-harm": [2, 0, 0, 0, 0, 0, 1],
        "Bullying and harassment": [1, 0, 1, 0, 0, 1, 0],
    }
    assert insight.insight_heatmap(user=user, filters=f).total == 6
    assert insight.insight_by_group(user=user, filters=f).rows == [("Year 9", 6)]
    assert insight.insight_top_keywords(user=user, filters=f).rows == [
        ("cut myself", 2),
        ("loser", 2),
        ("ugly", 1),
        ("worthless", 1),
    ]
    assert [
        (r.label, r.false_positives, r.total) for r in insight.insight_false_positives_by_policy(user=user, filters=f)
    ] == [("Bullying words", 2, 3)]


def test_teacher10_never_sees_year9_people_at_risk(week):
    assert insight.insight_rising_risk(user=week.teacher10, filters=filters()) == []
    assert insight.insight_headline(user=week.teacher10, filters=filters()).total == 3


def test_outsider_sees_zero(week):
    assert insight.insight_headline(user=week.outsider, filters=filters()).total == 0
    assert insight.insight_review_times(user=week.outsider, filters=filters()).reviewed == 0


def test_group_filter_narrows_and_a_group_outside_access_is_ignored(week, client):
    ids, names, ignored = insight.insight_groups_resolve(user=week.lead, group_uuids=[week.year10.uuid])
    assert names == ("Year 10",) and ignored == 0
    assert insight.insight_headline(user=week.lead, filters=filters(group_ids=ids)).total == 3
    ids, names, ignored = insight.insight_groups_resolve(user=week.teacher9, group_uuids=[week.year10.uuid])
    assert (ids, names, ignored) == (frozenset(), (), 1)
    client.force_login(week.teacher9)
    response = client.get(URL, {**RANGE, "group": str(week.year10.uuid)})
    assert response.status_code == 200
    assert response.context["headline"].total == 6  # the filter is dropped, never widened to Year 10
    assert "Ignored a group that is not one of yours." in response.context["notes"]
    assert b"Ten Pupil" not in response.content and b"Year 10" not in response.content


def test_a_device_group_member_counts_for_staff_of_that_device_group(week):
    from tests.factories import DeviceGroupFactory

    suite = DeviceGroupFactory(name="IT suite")
    MembershipFactory(group=suite, person=None, device=week.device10)
    it_staff = StaffAccessFactory(user=StaffUserFactory(username="itstaff"), group=suite).user
    assert insight.insight_headline(user=it_staff, filters=filters()).total == 3
    assert insight.insight_by_group(user=it_staff, filters=filters()).rows == [("IT suite", 3)]


# --- The page, CSV and PDF -------------------------------------------------------------------------


def test_page_renders_every_chart_with_tables_and_no_inline_style_or_script(week, client):
    client.force_login(week.lead)
    response = client.get(URL, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    for name in insight_panels_for_lead():
        assert f'id="panel-{name}"' in html
        assert f"format=csv&amp;chart={name}" in html
    assert html.count('role="img"') >= 10
    assert html.count("<table") >= 12
    assert "style=" not in html
    assert "<script>" not in html and "<script " not in html.replace('<script src="', "")
    assert 'href="/console/insight/"' in html and 'aria-current="page"' in html
    timeline = f"/console/logs/?tab=timeline&amp;person={week.pupil9.uuid}"
    assert timeline in html
    assert "2 severe self-harm captures this week, up from 0 a week on average" in html
    assert 'id="stat-median">2 h<' in html and 'id="stat-p90">5 h 36 min<' in html


def insight_panels_for_lead() -> list[str]:
    return [
        "by_category",
        "by_severity",
        "rising_risk",
        "heatmap",
        "by_group",
        "top_keywords",
        "top_policies",
        "status",
        "review_time",
        "confide",
        "fp_keywords",
        "fp_policies",
    ]


def test_admin_links_to_tune_a_keyword_only_for_staff_who_can_use_the_admin(week, client):
    policy_pk = week.captures["C"].policy_id
    link = f"/admin/policies/keywordpolicy/{policy_pk}/change/"
    client.force_login(week.lead)
    assert link not in client.get(URL, RANGE).content.decode()
    client.force_login(week.admin)
    assert link in client.get(URL, RANGE).content.decode()


def test_teacher_page_has_no_confide_panel_and_no_year10(week, client):
    client.force_login(week.teacher9)
    html = client.get(URL, RANGE).content.decode()
    assert 'id="panel-confide"' not in html
    assert "Year 10" not in html and "y10pupil" not in html
    assert 'id="stat-total">6<' in html


def test_bad_filters_are_ignored_with_a_note(week, client):
    client.force_login(week.lead)
    response = client.get(
        URL, {"from": "2024-07-07", "to": "2024-07-01", "category": ["self_harm", "nope"], "group": "x"}
    )
    assert response.status_code == 200
    assert response.context["filters"].start == START and response.context["filters"].end == END
    assert response.context["filters"].categories == ("self_harm",)
    assert response.context["headline"].total == 5
    assert len(response.context["notes"]) == 3


def test_default_range_is_the_last_30_days(cast, client):
    client.force_login(cast.lead)
    f = client.get(URL).context["filters"]
    assert f.end == timezone.localdate() and f.days == 30 and f.bucket == "day"


def test_insight_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def read_csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content if response.streaming else [response.content]).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_csv_download_of_a_chart_holds_its_table_and_is_audited(week, client):
    client.force_login(week.lead)
    response = client.get(URL, {**RANGE, "format": "csv", "chart": "by_category"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="insight-by_category-20240701-20240707.csv"' in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == ["Period starting", "Self-harm", "Bullying and harassment", "Total"]
    assert rows[1] == ["01 Jul", "2", "1", "3"]
    assert len(rows) == 8
    entry = AuditEntry.objects.get(action="insight.exported_csv")
    assert entry.actor == week.lead and entry.after["chart"] == "by_category"


def test_csv_cells_cannot_run_as_formulas(week, client):
    week.captures["A"].__class__.objects.filter(pk=week.captures["A"].pk).update(keyword_text="=HYPERLINK(1)")
    client.force_login(week.lead)
    rows = read_csv(client.get(URL, {**RANGE, "format": "csv", "chart": "top_keywords"}))
    assert ["'=HYPERLINK(1)", "1"] in rows


def test_csv_of_the_heatmap_and_rising_risk(week, client):
    client.force_login(week.lead)
    heat = read_csv(client.get(URL, {**RANGE, "format": "csv", "chart": "heatmap"}))
    assert heat[1][0] == "Mon" and heat[1][1 + 22] == "1" and heat[1][-1] == "3"
    rising = read_csv(client.get(URL, {**RANGE, "format": "csv", "chart": "rising_risk"}))
    assert rising[1][:6] == ["Nine Pupil", "SCHOOL\\y9pupil", "6", "0.5", "24", "0.5"]


def test_csv_of_an_unknown_chart_or_confide_without_the_right_is_404(week, client):
    client.force_login(week.teacher9)
    assert client.get(URL, {"format": "csv", "chart": "nope"}).status_code == 404
    assert client.get(URL, {"format": "csv", "chart": "confide"}).status_code == 404


def test_summary_pdf_for_governors(week, client, tmp_path):
    client.force_login(week.lead)
    response = client.get("/console/insight/summary.pdf", RANGE)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "summary for governors" in text
    for expected in (
        "9 captures 3 severe captures 2 not yet reviewed 44.4% resolved as false positives",
        "2 h median time to first review 5 h 36 min 90% of reviews within",
        "4 captures out of hours",
        "3 Confide reports",
        "Bullying words 3 4 75.0%",
    ):
        assert expected in text, expected
    assert "Exported by" in text and "lead" in text
    assert "Nine Pupil" not in text and "y9pupil" not in text  # no pupil named
    entry = AuditEntry.objects.get(action="insight.exported_pdf")
    assert entry.actor == week.lead and entry.after["from"] == "2024-07-01"
    (tmp_path / "summary.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(tmp_path / "summary.pdf"), str(tmp_path / "page")],
        check=True,
    )
    from PIL import Image

    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    low, high = image.getextrema()
    assert low < 100 and high > 200  # ink on paper, not a blank page
    dark = sum(image.histogram()[:128])
    assert dark > 500


def test_summary_pdf_of_a_teacher_covers_year9_only(week, client):
    client.force_login(week.teacher9)
    pdf = client.get("/console/insight/summary.pdf", RANGE).content
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "6 captures 2 severe captures" in text and "Year 10" not in text
    assert "Confide reports are counted for Confide viewers only" in text


# --- Cost --------------------------------------------------------------------------------------------


def test_query_count_does_not_grow_with_rows(week, client, django_assert_max_num_queries):
    client.force_login(week.lead)
    with CaptureQueriesContext(connection) as small:
        assert client.get(URL, RANGE).status_code == 200
    # Ten times the data: more people, keywords, groups, days, statuses, reviews and reports.
    for n in range(30):
        person = PersonFactory()
        MembershipFactory(group=week.year9 if n % 2 else week.year10, person=person)
        keyword = KeywordFactory(text=f"word{n}", severity=[Severity.LOW, Severity.SEVERE][n % 2])
        for day in range(1, 4):
            capture = CaptureFactory(
                person=person, device=DeviceFactory(), keyword=keyword, occurred_at=utc(day, n % 24), screenshot=""
            )
            if n % 3 == 0:
                capture_set_status(capture=capture, status=CaptureStatus.RESOLVED_FALSE_POSITIVE, actor=week.lead)
        ConfideReportFactory(person=person, reported_at=utc(3, 9))
    assert ConfideReport.objects.count() > 30
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(URL, RANGE)
    assert response.context["headline"].total == 9 + 90


def test_filters_dataclass_buckets():
    assert InsightFilters(start=date(2024, 1, 1), end=date(2024, 1, 31)).bucket == "day"
    assert InsightFilters(start=date(2024, 1, 1), end=date(2024, 2, 1)).bucket == "week"
    assert InsightFilters(start=date(2024, 1, 1), end=date(2024, 7, 1)).bucket == "week"
    assert InsightFilters(start=date(2024, 1, 1), end=date(2024, 7, 2)).bucket == "month"
    f = InsightFilters(start=date(2024, 7, 1), end=date(2024, 7, 1))
    assert f.end_at - f.start_at == timedelta(days=1)
    assert f.start_at.utcoffset() == timedelta(hours=1)


def test_format_duration():
    assert insight.format_duration(None) == "—"
    assert insight.format_duration(29) == "0 min"
    assert insight.format_duration(45 * 60) == "45 min"
    assert insight.format_duration(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert insight.format_duration(50 * 3600) == "2 d 2 h"


# --- The SVG charts ----------------------------------------------------------------------------------


def test_stacked_bars_are_accessible_patterned_and_labelled():
    from safeguard.console import charts

    svg = charts.stacked_bar_chart(
        chart_id="t", title="By <category>", labels=["01 Jul", "02 Jul"], series=[("A & B", [2, 0]), ("C", [1, 5])]
    )
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-label="By &lt;category&gt;"' in svg
    assert '<title id="t-title">By &lt;category&gt;</title>' in svg
    assert '<desc id="t-desc">8 in all over 2 periods; highest 5 (02 Jul). A &amp; B: 2; C: 6</desc>' in svg
    assert svg.count('class="chart-bar"') == 3  # zero segments are not drawn
    assert 'fill="url(#t-p0)"' in svg and 'fill="url(#t-p1)"' in svg and "<pattern" in svg
    assert ">3</text>" in svg and ">5</text>" in svg  # totals printed above the bars
    assert "style=" not in svg and "<script" not in svg


def test_bar_line_and_heatmap_print_their_values():
    from safeguard.console import charts

    bars = charts.bar_chart(chart_id="b", title="Top", rows=[("loser", 3), ("<b>", 1)], unit="%")
    assert bars.count('class="chart-bar"') == 2 and ">3%</text>" in bars and "&lt;b&gt;" in bars
    line = charts.line_chart(chart_id="l", title="Confide", labels=["a", "b"], series=[("Named", [0, 2])])
    assert "<polyline" in line and ">2</text>" in line and 'role="img"' in line
    heat = charts.heatmap(chart_id="h", title="Heat", row_labels=["Mon"], col_labels=["00", "01"], cells=[[0, 7]])
    assert heat.count('class="chart-cell"') == 2 and ">7</text>" in heat
    assert "busiest Mon 01 with 7" in heat
    empty = charts.bar_chart(chart_id="e", title="None", rows=[])
    assert "Nothing in this range." in empty
    for svg in (bars, line, heat, empty):
        assert "style=" not in svg
