"""PDF evidence exports of the log viewer (safeguard.captures.exports): the report, the job, the worker.

Specification: the report holds, for each filtered capture the requester may see, its facts, its
screenshot and the activity 30 minutes either side; every page names the exporter; the filters
are re-applied with the requester's access when the job runs; the job reports progress up to
100, is audited "logs.exported_pdf", and is idempotent; WeasyPrint fetches nothing.
"""

import http.server
import io
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from PIL import Image
from pypdf import PdfReader

from safeguard.captures import tasks
from safeguard.captures.exports import (
    MAX_CAPTURES,
    export_filters_for,
    export_job_create,
    export_job_run,
    export_params_from_filters,
    logs_report_pdf,
)
from safeguard.captures.models import ExportJob
from safeguard.captures.selectors import LogFilters
from safeguard.logs.models import AuditEntry, EventType
from safeguard.policies.models import Category, Severity
from tests.factories import (
    ActivityEventFactory,
    CaptureFactory,
    ExportJobFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    png_bytes,
)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def params(**filters) -> dict:
    return export_params_from_filters(filters=LogFilters(**filters))


@pytest.fixture
def evidence(cast):
    """Two captures of Year 9's pupil with activity around them, and one of Year 10's pupil."""
    cast.lead.first_name, cast.lead.last_name = "Joy", "Okafor"
    cast.lead.save()
    at = timezone.now() - timedelta(hours=3)
    knife = CaptureFactory(
        person=cast.pupil9,
        device=cast.device9,
        keyword=KeywordFactory(text="knife", severity=Severity.HIGH, policy=KeywordPolicyFactory(name="Weapons (UK)")),
        context="im bringing a knife tomorrow",
        window_title="WhatsApp - Google Chrome",
        occurred_at=at,
        screenshot=ContentFile(png_bytes(1600, 900, "darkred"), name="shot.png"),
    )
    vape = CaptureFactory(
        person=cast.pupil9,
        device=cast.device9,
        keyword=KeywordFactory(text="vape", severity=Severity.LOW),
        occurred_at=at - timedelta(days=1),
    )
    other = CaptureFactory(
        person=cast.pupil10, device=cast.device10, keyword=KeywordFactory(text="tenth"), occurred_at=at
    )
    before = ActivityEventFactory(
        person=cast.pupil9,
        device=cast.device9,
        type=EventType.WEBSITE,
        occurred_at=at - timedelta(minutes=20),
        data={"url": "https://example.test/knives-for-sale", "title": "Knives", "browser": "chrome.exe"},
    )
    after = ActivityEventFactory(
        person=cast.pupil9, device=cast.device9, occurred_at=at + timedelta(minutes=29), data={"title": "Homework.docx"}
    )
    far = ActivityEventFactory(
        person=cast.pupil9, device=cast.device9, occurred_at=at + timedelta(minutes=45), data={"title": "Far away"}
    )
    return {"knife": knife, "vape": vape, "other": other, "before": before, "after": after, "far": far}


# --- the report ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_report_holds_each_captures_facts_its_context_and_the_exporter(cast, evidence):
    chosen = export_filters_for(user=cast.lead, params=params())

    pdf, count = logs_report_pdf(user=cast.lead, chosen=chosen)

    assert pdf.startswith(b"%PDF") and count == 3
    text = pdf_text(pdf)
    knife = evidence["knife"]
    for fact in (
        "knife",
        "Weapons (UK)",
        "High",
        "Nine Pupil",
        "SCHOOL\\y9pupil",
        "Y9-PC01",
        "WhatsApp - Google Chrome",
        "im bringing a knife tomorrow",
        str(knife.uuid),
        "vape",
        "tenth",
    ):
        assert fact in text, fact
    assert "Exported by Joy Okafor (lead)" in text
    # The activity 30 minutes either side of the knife capture, and nothing further away.
    assert "Visited https://example.test/knives-for-sale" in text
    assert "Homework.docx" in text
    assert "Far away" not in text


@pytest.mark.django_db
def test_every_page_carries_the_footer(cast, evidence):
    pdf, _ = logs_report_pdf(user=cast.lead, chosen=export_filters_for(user=cast.lead, params=params()))

    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) >= 4  # a summary, then a page per capture
    for number, page in enumerate(pages, start=1):
        text = page.extract_text()
        assert "Exported by Joy Okafor (lead)" in text
        assert f"Page {number} of {len(pages)}" in text


@pytest.mark.django_db
def test_the_first_capture_page_is_not_blank_and_shows_the_screenshot(cast, evidence, tmp_path):
    chosen = export_filters_for(user=cast.lead, params=params(severity=Severity.HIGH, person=cast.pupil9))
    pdf, count = logs_report_pdf(user=cast.lead, chosen=chosen)
    assert count == 1
    (tmp_path / "report.pdf").write_bytes(pdf)

    for page in (1, 2):
        subprocess.run(
            ["pdftoppm", "-png", "-r", "50", "-f", str(page), "-l", str(page), str(tmp_path / "report.pdf"),
             str(tmp_path / f"page{page}")],
            check=True,
        )  # fmt: skip
    [first] = list(tmp_path.glob("page1*.png"))
    [second] = list(tmp_path.glob("page2*.png"))

    def counts(png: Path) -> tuple[int, int]:
        with Image.open(png) as image:
            data = image.convert("RGB").tobytes()
        pixels = [tuple(data[index : index + 3]) for index in range(0, len(data), 3)]
        non_white = sum(1 for pixel in pixels if min(pixel) < 200)
        red = sum(1 for r, g, b in pixels if r > 90 and g < 40 and b < 40)
        return non_white, red

    assert counts(first)[0] > 1500  # the heading, the filters, the summary table
    non_white, red = counts(second)
    assert non_white > 2000
    assert red > 1000  # the dark red screenshot, scaled into the capture's page


@pytest.mark.django_db
def test_the_filters_are_re_applied_with_the_requesters_access(cast, evidence):
    # A teacher of Year 9 whose stored filters name Year 10's pupil (a hand-made request, or access
    # lost since): the person filter is dropped and only what they see is exported.
    chosen = export_filters_for(user=cast.teacher9, params=params(person=cast.pupil10))

    assert chosen.dropped == ["person"] and chosen.filters.person is None
    pdf, count = logs_report_pdf(user=cast.teacher9, chosen=chosen)
    text = pdf_text(pdf)
    assert count == 2
    assert "knife" in text and "vape" in text
    assert "tenth" not in text and "Ten Pupil" not in text
    assert "Left out, because they name something no longer visible" in text


@pytest.mark.django_db
def test_an_outsider_exports_an_empty_report(cast, evidence):
    pdf, count = logs_report_pdf(user=cast.outsider, chosen=export_filters_for(user=cast.outsider, params=params()))

    assert count == 0
    text = pdf_text(pdf)
    assert "No captures match these filters." in text
    assert "knife" not in text and "Nine Pupil" not in text


@pytest.mark.django_db
def test_the_filters_narrow_the_report(cast, evidence):
    chosen = export_filters_for(
        user=cast.lead,
        params=params(
            start=evidence["knife"].occurred_at - timedelta(hours=1),
            end=evidence["knife"].occurred_at + timedelta(hours=1),
            group_ids=frozenset({cast.year9.pk}),
        )
        | {"group": str(cast.year9.uuid)},
    )

    assert chosen.group == cast.year9
    pdf, count = logs_report_pdf(user=cast.lead, chosen=chosen)
    assert count == 1  # the knife capture: the vape one is a day earlier, the tenth is Year 10's
    text = pdf_text(pdf)
    assert "Group" in text and "Year 9" in text


@pytest.mark.django_db
def test_an_illegal_content_capture_has_no_screenshot_or_context(cast):
    policy = KeywordPolicyFactory(category=Category.ILLEGAL_CONTENT, is_illegal_content=True)
    CaptureFactory(
        person=cast.pupil9,
        keyword=KeywordFactory(policy=policy, text="forbidden"),
        context="the words around it",
        screenshot=ContentFile(png_bytes(400, 300, "darkred"), name="shot.png"),
    )

    pdf, _ = logs_report_pdf(user=cast.lead, chosen=export_filters_for(user=cast.lead, params=params()))

    text = pdf_text(pdf)
    assert "forbidden" in text
    assert "The screenshot is not included" in text
    assert "the words around it" not in text
    assert not any(page.images for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.django_db
def test_a_large_selection_is_capped_and_says_so(cast, settings, monkeypatch):
    monkeypatch.setattr("safeguard.captures.exports.MAX_CAPTURES", 2)
    for _ in range(3):
        CaptureFactory(person=cast.pupil9, screenshot="")

    pdf, count = logs_report_pdf(user=cast.lead, chosen=export_filters_for(user=cast.lead, params=params()))

    assert count == 2
    assert "More than 2 captures match" in pdf_text(pdf)
    assert MAX_CAPTURES == 250  # the real cap (the patch above is for this test only)


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


@pytest.mark.django_db
def test_the_report_fetches_nothing_over_the_network(cast):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/leak.png"
    try:
        CaptureFactory(
            person=cast.pupil9,
            window_title=f'<img src="{url}">',
            url=url,
            context=f"<link rel=stylesheet href='{url}'>",
        )
        ActivityEventFactory(
            person=cast.pupil9, type=EventType.WEBSITE, data={"url": url, "title": f"<img src='{url}'>"}
        )
        _Recorder.hits.clear()

        pdf, _ = logs_report_pdf(user=cast.lead, chosen=export_filters_for(user=cast.lead, params=params()))
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.hits == []
    assert f'<img src="{url}">' in pdf_text(pdf)


# --- the job ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_job_runs_to_done_with_its_file_and_is_audited(cast, evidence, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process after the commit
        job = export_job_create(requested_by=cast.lead, params=params(person=cast.pupil9))

    job.refresh_from_db()
    assert (job.status, job.progress, job.capture_count) == (ExportJob.Status.DONE, 100, 2)
    assert job.finished_at is not None and job.error == ""
    stored = job.file.open("rb").read()
    assert stored.startswith(b"%PDF") and job.size_bytes == len(stored)
    assert job.file.name == f"exports/{job.created_at:%Y/%m/%d}/{job.uuid}.pdf"
    entry = AuditEntry.objects.get(action="logs.exported_pdf")
    assert entry.actor == cast.lead and entry.target_id == str(job.uuid)
    assert entry.after["captures"] == 2 and entry.after["filters"]["person"] == str(cast.pupil9.uuid)


@pytest.mark.django_db
def test_running_a_finished_job_again_does_nothing(cast, evidence, settings):
    job = ExportJobFactory(requested_by=cast.lead)
    assert export_job_run(job_id=job.pk) is True
    job.refresh_from_db()
    first_file = job.file.name

    assert export_job_run(job_id=job.pk) is False  # a redelivered task

    job.refresh_from_db()
    assert job.file.name == first_file
    assert AuditEntry.objects.filter(action="logs.exported_pdf").count() == 1
    assert [path.name for path in (Path(settings.MEDIA_ROOT) / "exports").rglob("*.pdf")] == [f"{job.uuid}.pdf"]


@pytest.mark.django_db
def test_a_job_left_running_by_a_dead_worker_is_finished_by_the_redelivery(cast, evidence):
    job = ExportJobFactory(requested_by=cast.lead, status=ExportJob.Status.RUNNING, progress=40)

    assert tasks.export_job_run.delay(job.pk).get() is True

    job.refresh_from_db()
    assert (job.status, job.progress) == (ExportJob.Status.DONE, 100)


@pytest.mark.django_db
def test_a_job_whose_requester_left_fails_with_a_reason(cast):
    cast.teacher9.is_active = False
    cast.teacher9.save()
    job = ExportJobFactory(requested_by=cast.teacher9)

    assert export_job_run(job_id=job.pk) is False

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and "no longer active" in job.error
    assert not job.file


@pytest.mark.django_db
def test_a_report_that_cannot_be_made_fails_the_job(cast, monkeypatch):
    def broken(**kwargs):
        raise ValueError("renderer exploded")

    monkeypatch.setattr("safeguard.captures.exports.logs_report_pdf", broken)
    job = ExportJobFactory(requested_by=cast.lead)

    assert export_job_run(job_id=job.pk) is False

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "could not be made" in job.error and "exploded" not in job.error


@pytest.mark.django_db
def test_progress_is_written_as_the_report_is_gathered(cast, monkeypatch):
    for _ in range(4):
        CaptureFactory(person=cast.pupil9, screenshot="")
    job = ExportJobFactory(requested_by=cast.lead)
    seen: list[int] = []
    from safeguard.captures import exports

    original = exports._set_progress

    def spy(job_id, state, percent):
        original(job_id, state, percent)
        seen.append(ExportJob.objects.get(pk=job_id).progress)

    monkeypatch.setattr(exports, "_set_progress", spy)
    assert export_job_run(job_id=job.pk) is True

    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] == 99
    assert {20, 40, 60, 80} <= set(seen)
    job.refresh_from_db()
    assert job.progress == 100


# --- on a real worker -----------------------------------------------------------------------------


@pytest.mark.integration
def test_a_real_worker_builds_the_export_with_progress_and_only_the_requester_downloads_it(celery_worker, cast):
    for minute in range(12):
        CaptureFactory(
            person=cast.pupil9,
            device=cast.device9,
            occurred_at=timezone.now() - timedelta(minutes=minute * 5),
            screenshot=ContentFile(png_bytes(1280, 720, "navy"), name="shot.png"),
        )

    job = export_job_create(requested_by=cast.lead, params=params(person=cast.pupil9))  # enqueued on commit

    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        seen.append(job.progress)
        if job.is_finished:
            break
        time.sleep(0.05)
    assert job.status == ExportJob.Status.DONE, f"{job.status} {job.error}\n{celery_worker.log()[-3000:]}"
    assert job.progress == 100 and job.capture_count == 12
    assert seen == sorted(seen)  # the bar only moves forward
    assert "export_job_run[" in celery_worker.log()

    requester, other = Client(), Client()
    requester.force_login(cast.lead)
    other.force_login(cast.teacher9)
    url = f"/console/exports/{job.uuid}/download"
    response = requester.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    body = b"".join(response.streaming_content)
    text = pdf_text(body)
    assert "Exported by lead (lead)" in text and "Nine Pupil" in text
    assert other.get(url).status_code == 404
    assert other.get(f"/console/exports/{job.uuid}/").status_code == 404
    assert AuditEntry.objects.filter(action="export.downloaded", actor=cast.lead).count() == 1
    assert AuditEntry.objects.filter(action="logs.exported_pdf", target_id=str(job.uuid)).count() == 1


@pytest.mark.django_db
def test_storage_errors_are_retried_then_the_job_is_marked_failed(cast, monkeypatch):
    from celery.exceptions import Retry

    def disk_full(*, job_id):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safeguard.captures.exports.export_job_run", disk_full)
    job = ExportJobFactory(requested_by=cast.lead)

    # A first failure schedules a retry with backoff; the job is still waiting.
    with pytest.raises(Retry) as retry:
        tasks.export_job_run.apply(args=[job.pk], retries=0, throw=True)
    assert retry.value.when == 10
    job.refresh_from_db()
    assert job.status == ExportJob.Status.QUEUED

    # The last try gives up: the job is marked failed, so its page stops waiting.
    with pytest.raises(OSError):
        tasks.export_job_run.apply(args=[job.pk], retries=tasks.EXPORT_MAX_RETRIES, throw=True)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and "could not be stored" in job.error
