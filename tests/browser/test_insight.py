"""In the browser: the demo lead opens Insight from the toolbar and sees its charts drawn.

The charts are server-rendered SVG (no JavaScript library): each panel has an `<svg role="img">`
with bars (or cells, or points), a data table behind a <details> toggle, and a CSV download.
"""

import csv
import io

import pytest

from safeguard.captures.models import Capture
from tests.browser.conftest import login

pytestmark = pytest.mark.integration


def test_the_lead_sees_insight_charts_with_bars_tables_and_csv(page):
    login(page, "lead")
    page.goto("/console/")
    page.get_by_role("navigation", name="Areas").get_by_role("link", name="Insight").click()
    page.wait_for_url("**/console/insight/")
    assert page.get_by_role("heading", level=1).inner_text().strip().startswith("Insight")

    # Every chart is an accessible image; the demo's captures draw bars in the time series.
    charts = page.locator("main svg[role=img]")
    assert charts.count() >= 8
    by_category = page.locator("#panel-by_category svg[role=img]")
    assert by_category.get_attribute("aria-label") == "Captures over time by category"
    assert by_category.locator("rect.chart-bar").count() > 0
    assert page.locator("#panel-top_keywords svg rect.chart-bar").count() > 0
    assert page.locator("#panel-heatmap svg rect.chart-cell").count() == 7 * 24
    assert page.locator("#panel-heatmap svg text.chart-value").count() > 0  # numbers in the cells
    box = by_category.bounding_box()
    assert box["width"] > 300 and box["height"] > 150  # drawn, not collapsed

    # The numbers match the database, and the data table reads the chart out.
    total = int(page.locator("#stat-total").inner_text())
    assert total > 0
    table = page.locator("#panel-status details.chart-data")
    assert not table.locator("table").is_visible()
    table.locator("summary").click()
    assert table.locator("table").is_visible()
    status_sum = sum(int(cell.inner_text()) for cell in table.locator("tbody td").all())
    assert status_sum == total

    # A chart's CSV downloads.
    with page.expect_download() as download_info:
        page.locator("#panel-top_policies").get_by_role("link", name="Download CSV").click()
    rows = list(csv.reader(io.StringIO(open(download_info.value.path(), encoding="utf-8-sig").read())))  # noqa: SIM115
    assert rows[0] == ["Policy", "Captures"] and len(rows) > 1
    assert Capture.objects.count() >= total


def test_the_year9_teacher_sees_fewer_captures_than_the_lead(page):
    login(page, "lead")
    page.goto("/console/insight/")
    lead_total = int(page.locator("#stat-total").inner_text())
    page.context.clear_cookies()
    login(page, "teacher")
    page.goto("/console/insight/")
    teacher_total = int(page.locator("#stat-total").inner_text())
    assert 0 < teacher_total < lead_total
    assert "Year 10" not in page.locator("#panel-by_group").inner_text()
    assert page.locator("#panel-confide").count() == 0
