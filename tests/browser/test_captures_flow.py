"""In the browser: the safeguarding lead's morning review of a capture, with the demo school.

Users view → a red pupil's captures → the capture: change its status, add a note, export the PDF,
then the timeline 30 minutes either side with the capture highlighted. Also the screenshot's
blur and zoom (static JS, no inline script) and the teacher's view without Year 10.
"""

import io
import re

import pytest
from pypdf import PdfReader

from safeguard.captures.models import Capture, CaptureStatus
from safeguard.logs.models import AuditEntry
from tests.browser.conftest import login

pytestmark = pytest.mark.integration


def test_the_lead_reviews_a_red_pupils_capture_end_to_end(page):
    login(page, "lead")

    # A red pupil in the users view, and their captures.
    page.goto("/console/")
    red = page.locator("tr.person-row.has-unreviewed").first
    pupil = red.locator(".person-name").inner_text().strip()
    red.get_by_role("link", name=re.compile("^Captures")).click()
    page.wait_for_url("**/console/captures/?person=*")
    row = page.locator("tr.capture-row.is-new").first
    keyword = row.locator("td.keyword").inner_text().strip()
    row.get_by_role("link", name=re.compile("^Open")).click()
    page.wait_for_url(re.compile(r"/console/captures/[0-9a-f-]{36}/$"))
    capture_uuid = page.url.rstrip("/").rsplit("/", 1)[1]
    assert pupil in page.locator("main").inner_text()

    # Change its status.
    page.get_by_label("Status", exact=True).select_option(label="Under review")
    page.get_by_role("button", name="Change status").click()
    page.wait_for_url(f"**/console/captures/{capture_uuid}/#workflow")
    assert page.get_by_text("Status changed to Under review.").is_visible()
    assert Capture.objects.get(uuid=capture_uuid).status == CaptureStatus.UNDER_REVIEW

    # Add a note.
    page.get_by_label("Add a note").fill("Spoke to the pupil at break; parents informed.")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"**/console/captures/{capture_uuid}/#notes")
    assert page.locator(".note-list").get_by_text("Spoke to the pupil at break; parents informed.").is_visible()
    history = page.locator(".capture-history").inner_text()
    assert "Status changed from New to Under review" in history

    # Export and download the PDF.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export to PDF").click()
    pdf = open(download_info.value.path(), "rb").read()
    assert pdf.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert keyword in text and "Under review" in text and "Exported by Joy Okafor (lead)" in text
    assert "Spoke to the pupil at break; parents informed." in text
    assert AuditEntry.objects.filter(action="capture.exported", target_id=capture_uuid).exists()

    # The timeline, 30 minutes either side, with this capture highlighted.
    page.get_by_role("link", name="Timeline: 30 minutes either side").click()
    page.wait_for_url(f"**/console/logs/?tab=timeline*around={capture_uuid}*")
    focus = page.locator("tr.timeline-row.is-capture.is-focus")
    assert focus.count() == 1
    assert focus.get_attribute("id") == f"capture-{capture_uuid}"
    assert keyword in focus.inner_text() and "This capture" in focus.inner_text()
    assert focus.is_visible()
    assert page.locator("tr.timeline-row.is-event").count() >= 1


def test_a_graphic_screenshot_is_blurred_until_clicked_then_zooms(page):
    graphic = Capture.objects.filter(policy__category__in=["grooming", "adult_content"]).first()
    login(page, "lead")
    page.goto(f"/console/captures/{graphic.uuid}/")

    shot = page.locator("figure.shot")
    image = page.locator("img.shot-image")
    assert "is-blurred" in shot.get_attribute("class")
    assert image.get_attribute("src") is None  # not fetched (nor its viewing audited) yet
    assert not AuditEntry.objects.filter(action="capture.screenshot_viewed", target_id=str(graphic.uuid)).exists()

    page.get_by_role("button", name=re.compile("may be graphic")).click()
    page.wait_for_function("document.querySelector('img.shot-image').naturalWidth > 0")
    assert "is-blurred" not in shot.get_attribute("class")
    assert AuditEntry.objects.filter(action="capture.screenshot_viewed", target_id=str(graphic.uuid)).exists()

    fitted = image.bounding_box()["width"]
    page.locator("button.shot-zoom").click()
    assert "is-actual" in shot.get_attribute("class")
    assert page.locator("button.shot-zoom").get_attribute("aria-pressed") == "true"
    assert image.bounding_box()["width"] > fitted
    page.locator("button.shot-zoom").click()
    assert "is-actual" not in shot.get_attribute("class")


def test_the_colleague_link_is_copied_to_the_clipboard(page):
    capture = Capture.objects.order_by("-occurred_at").first()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, "lead")
    page.goto(f"/console/captures/{capture.uuid}/")

    page.get_by_role("button", name="Copy link").click()

    page.wait_for_function("document.querySelector('[data-copy-status]').textContent.length > 0")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"/console/captures/{capture.uuid}/")
    assert copied.startswith("http")


def test_the_teacher_sees_no_year_10_capture(page):
    year10 = Capture.objects.filter(person__memberships__group__name="Year 10").first()
    login(page, "teacher")

    page.goto("/console/captures/")
    listing = page.locator("main").inner_text()
    page.goto("/console/logs/?tab=timeline")
    timeline = page.locator("main").inner_text()
    response = page.goto(f"/console/captures/{year10.uuid}/")

    assert year10.person.display_name not in listing + timeline
    assert "Year 10" not in listing + timeline
    assert response.status == 404
