"""The capture PDF: the evidence record staff export (safeguard.captures.pdf)."""

import http.server
import io
import subprocess
import threading

import pytest
from django.core.exceptions import PermissionDenied
from PIL import Image
from pypdf import PdfReader

from safeguard.captures.pdf import LocalOnlyURLFetcher, capture_export_pdf, render_pdf
from safeguard.captures.services import capture_add_note, capture_assign, capture_set_status
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Category
from tests.factories import CaptureFactory, KeywordFactory, KeywordPolicyFactory, StaffUserFactory, png_bytes

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def reviewed_capture(cast):
    from django.core.files.base import ContentFile

    capture = CaptureFactory(
        person=cast.pupil9,
        device=cast.device9,
        keyword=KeywordFactory(text="hurt myself", policy=KeywordPolicyFactory(name="Self-harm (UK)")),
        context=f"i want to hurt myself {HOSTILE}",
        window_title=f"Chat {HOSTILE}",
        url="https://example.test/?q=<b>x</b>",
        screenshot=ContentFile(png_bytes(800, 500, "darkred"), name="shot.png"),
    )
    capture_set_status(capture=capture, status="under_review", actor=cast.lead)
    capture_assign(capture=capture, assignee=cast.teacher9, actor=cast.lead)
    capture_add_note(capture=capture, author=cast.lead, text=f"Spoke to the pupil. {HOSTILE}")
    return capture


def test_the_pdf_holds_the_facts_notes_history_and_who_exported_it(cast, reviewed_capture):
    cast.lead.first_name, cast.lead.last_name = "Joy", "Okafor"
    cast.lead.save()

    pdf = capture_export_pdf(capture=reviewed_capture, exported_by=cast.lead)

    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    for fact in (
        "hurt myself",
        "Self-harm (UK)",
        "High",
        "Under review",
        "Nine Pupil",
        "SCHOOL\\y9pupil",
        "Y9-PC01",
        "chrome.exe",
        str(reviewed_capture.uuid),
        "teacher9",
        "Spoke to the pupil.",
    ):
        assert fact in text, fact
    assert "Exported by Joy Okafor (lead)" in text
    assert "Status history" in text and "Audit trail" in text
    assert "Assigned to teacher9" in text


def test_the_footer_is_on_every_page(cast, reviewed_capture):
    for number in range(12):
        capture_add_note(capture=reviewed_capture, author=cast.lead, text=f"Long note {number}. " + "word " * 150)

    pdf = capture_export_pdf(capture=reviewed_capture, exported_by=cast.lead)

    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        text = page.extract_text()
        assert "Exported by" in text and "lead" in text
        assert f"Page {number} of {len(pages)}" in text


def test_hostile_text_is_printed_as_text_not_markup(cast, reviewed_capture):
    text = pdf_text(capture_export_pdf(capture=reviewed_capture, exported_by=cast.lead))

    # Escaped markup renders as its literal characters; unescaped, the tag would vanish.
    assert text.count(HOSTILE) >= 3  # context, window title, note (and the audit row of the note)
    assert "<b>x</b>" in text


def test_the_first_page_is_not_blank(cast, reviewed_capture, tmp_path):
    (tmp_path / "capture.pdf").write_bytes(capture_export_pdf(capture=reviewed_capture, exported_by=cast.lead))

    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "capture.pdf"), str(tmp_path / "page")],
        check=True,
    )
    [png] = list(tmp_path.glob("page*.png"))
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        pixels = [rgb.getpixel((x, y)) for x in range(rgb.width) for y in range(rgb.height)]
    non_white = sum(1 for pixel in pixels if min(pixel) < 200)
    # The embedded screenshot is dark red: a block of its pixels is on the first page.
    red = sum(1 for r, g, b in pixels if r > 90 and g < 40 and b < 40)
    assert non_white > 2000
    assert red > 1000


def test_exporting_is_audited(cast, reviewed_capture):
    capture_export_pdf(capture=reviewed_capture, exported_by=cast.lead)

    entry = AuditEntry.objects.filter(action="capture.exported").get()
    assert entry.actor == cast.lead
    assert entry.target_id == str(reviewed_capture.uuid)


def test_an_illegal_content_screenshot_is_withheld(cast):
    policy = KeywordPolicyFactory(category=Category.ILLEGAL_CONTENT, is_illegal_content=True)
    capture = CaptureFactory(person=cast.pupil9, keyword=KeywordFactory(policy=policy))

    text = pdf_text(capture_export_pdf(capture=capture, exported_by=cast.lead))

    assert "The screenshot is not included" in text
    assert capture.keyword_text in text


def test_a_staff_member_who_cannot_see_the_capture_cannot_export_it(cast):
    capture = CaptureFactory(person=cast.pupil10)

    with pytest.raises(PermissionDenied):
        capture_export_pdf(capture=capture, exported_by=cast.teacher9)
    assert not AuditEntry.objects.filter(action="capture.exported").exists()


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(png_bytes())

    def log_message(self, *args):
        pass


def test_the_renderer_fetches_nothing_over_the_network():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    fetcher = LocalOnlyURLFetcher()
    try:
        pdf = render_pdf(
            f'<link rel="stylesheet" href="{base}/style.css"><p>hello</p><img src="{base}/pixel.png">'
            '<img src="file:///etc/passwd">',
            url_fetcher=fetcher,
        )
    finally:
        server.shutdown()
        server.server_close()

    assert pdf.startswith(b"%PDF")
    assert _Recorder.hits == []
    assert sorted(fetcher.refused) == sorted([f"{base}/style.css", f"{base}/pixel.png", "file:///etc/passwd"])


def test_embedded_data_uris_are_served():
    import base64

    fetcher = LocalOnlyURLFetcher()
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()

    response = fetcher.fetch(uri)

    assert response.read() == png_bytes()
    assert fetcher.refused == []


def test_the_exporter_is_named_even_without_a_full_name(cast, reviewed_capture):
    someone = StaffUserFactory(username="dsl2", is_superuser=True)

    text = pdf_text(capture_export_pdf(capture=reviewed_capture, exported_by=someone))

    assert "Exported by dsl2 (dsl2)" in text
